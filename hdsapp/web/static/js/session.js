// Who is signed in, signing in and out, and wiping everything the browser holds at logout.

import { ApiError, api, setCsrfToken } from "./api.js";

export const session = {
  /** GET /api/v1/me, or null when signed out. */
  me: null,
};

/** Ask the server who we are (the cookie is HttpOnly: this is the only way to know). */
export async function refreshMe() {
  try {
    const me = await api.get("/api/v1/me", { expectUnauthenticated: true });
    session.me = me;
    // A reload loses the in-memory CSRF token: /me hands it out again to the session's owner.
    if (me && me.csrf_token) setCsrfToken(me.csrf_token);
    return me;
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 404)) {
      session.me = null;
      setCsrfToken(null);
      return null;
    }
    throw error;
  }
}

export async function signIn({ email, password, otp }) {
  const answer = await api.post(
    "/api/v1/auth/login",
    { email, password, otp },
    { expectUnauthenticated: true },
  );
  setCsrfToken(answer.csrf_token);
  await refreshMe();
  return session.me;
}

/**
 * Logout clears everything: the server ends the session (and answers Clear-Site-Data); this
 * side also deletes every cache, IndexedDB database and Web Storage entry, and unregisters the
 * service worker, so nothing of the session survives in the browser. The caller reloads.
 */
export async function signOut() {
  try {
    await api.post("/api/v1/auth/logout", undefined, { expectUnauthenticated: true });
  } catch {
    // Already signed out, or offline: the local wipe happens all the same.
  }
  session.me = null;
  setCsrfToken(null);
  await wipeClientState();
}

function deleteDatabase(name) {
  return new Promise((resolve) => {
    const request = indexedDB.deleteDatabase(name);
    request.onsuccess = request.onerror = request.onblocked = () => resolve();
  });
}

export async function wipeClientState() {
  const steps = [];
  if ("caches" in self) {
    steps.push(caches.keys().then((names) => Promise.all(names.map((n) => caches.delete(n)))));
  }
  if ("indexedDB" in self && indexedDB.databases) {
    steps.push(
      indexedDB
        .databases()
        .then((dbs) => Promise.all(dbs.filter((d) => d.name).map((d) => deleteDatabase(d.name)))),
    );
  }
  if ("serviceWorker" in navigator) {
    steps.push(
      navigator.serviceWorker
        .getRegistrations()
        .then((regs) => Promise.all(regs.map((r) => r.unregister()))),
    );
  }
  try {
    localStorage.clear();
    sessionStorage.clear();
  } catch {
    // Storage unavailable: nothing to clear.
  }
  await Promise.allSettled(steps);
}

/** The care groups of the signed-in user, whatever the exact shape /me gives them. */
export function myGroups(me = session.me) {
  if (!me) return [];
  const raw = me.groups || me.memberships || [];
  return raw.map((g) => ({
    id: g.id || g.group_id,
    name: g.name || g.group_name || "",
    role: g.role,
    roles: g.roles || (g.role ? [g.role] : []),
  }));
}

export function groupsWithRole(role, me = session.me) {
  return myGroups(me).filter((g) => g.roles.includes(role));
}

export function displayName(me = session.me) {
  if (!me) return "";
  const user = me.user || me;
  return user.display_name || user.name || user.email || "";
}

/** Sign out, wipe, and load the sign-in page afresh (nothing the page held survives). */
export async function logout() {
  await signOut();
  location.replace("/#/signin");
}
