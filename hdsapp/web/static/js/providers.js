// The federated sign-in providers the server offers (Pro Santé Connect and others), from
// GET /api/v1/auth/providers: [{name, display_name, login_url}]. None configured: no button.

import { ApiError, api } from "./api.js";

const PSC = /pro\s*sant[ée]\s*connect/i;

export async function loadProviders() {
  try {
    const answer = await api.get("/api/v1/auth/providers", { expectUnauthenticated: true });
    return (answer.items || [])
      .filter((p) => typeof p.login_url === "string" && p.login_url.startsWith("/api/"))
      .map((p) => ({
        name: p.name,
        label: p.display_name || p.name,
        loginUrl: p.login_url,
        psc: p.name === "psc" || PSC.test(p.display_name || ""),
      }));
  } catch (error) {
    if (error instanceof ApiError || error instanceof TypeError) return [];
    throw error;
  }
}
