// The federated sign-in providers the server offers (Pro Santé Connect and others).
//
// Identity has no endpoint listing them yet: until it does, the sign-in screen shows none
// (asking a route that does not exist would only log errors). See the README's PWA section.

export async function loadProviders() {
  return [];
}
