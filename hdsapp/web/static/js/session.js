// Who is signed in, signing in and out, and wiping everything the browser holds at logout.
//
// The session cookie is HttpOnly: the page learns whether it is signed in by asking
// GET /api/v1/auth/session, which also hands the CSRF token back after a reload (it lives in
// memory only). GET /api/v1/me gives the user, memberships and authentication; GET
// /api/v1/groups the names of the groups.

import { ApiError, api, setCsrfToken } from "./api.js";

export const session = {
  /** GET /api/v1/me, or null when signed out. */
  me: null,
  /** GET /api/v1/auth/session: method, provider, authenticated_at, idle/absolute expiry. */
  info: null,
  /** GET /api/v1/groups items: id, name, role, member_count. */
  groups: [],
};

const GROUP_PAGES = 10;

async function loadGroups() {
  const items = [];
  let cursor = null;
  for (let page = 0; page < GROUP_PAGES; page += 1) {
    let answer;
    try {
      answer = await api.get("/api/v1/groups", { query: { cursor, limit: 100 } });
    } catch (error) {
      // Without the groups API (or its answer) the memberships from /me still show, unnamed.
      if (error instanceof ApiError && error.status !== 401) return items;
      throw error;
    }
    items.push(...(answer.items || []));
    cursor = answer.next_cursor;
    if (!cursor) break;
  }
  return items;
}

function forget() {
  session.me = null;
  session.info = null;
  session.groups = [];
  setCsrfToken(null);
}

/** Ask the server who we are (the cookie is HttpOnly: this is the only way to know). */
export async function refreshMe() {
  let info;
  try {
    info = await api.get("/api/v1/auth/session", { expectUnauthenticated: true });
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 404)) {
      forget();
      return null;
    }
    throw error;
  }
  setCsrfToken(info.csrf_token);
  const me = await api.get("/api/v1/me");
  // Group names come from the groups API; no membership, nothing to ask.
  const groups = me.groups && me.groups.length ? await loadGroups() : [];
  session.info = { ...info, csrf_token: undefined };
  session.me = me;
  session.groups = groups;
  return me;
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
  // The live stream belongs to the session that ends: closed first.
  await import("./live.js").then((live) => live.stop(), () => undefined);
  try {
    await api.post("/api/v1/auth/logout", undefined, { expectUnauthenticated: true });
  } catch {
    // Already signed out, or offline: the local wipe happens all the same.
  }
  forget();
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

/** Sign out, wipe, and load the sign-in page afresh (nothing the page held survives). */
export async function logout() {
  await signOut();
  // A real load, not a fragment change (which would keep this document and its memory).
  history.replaceState(null, "", "/#/signin");
  location.reload();
}

/** The care groups of the signed-in user: {id, name, role, memberCount}. */
export function myGroups() {
  const names = new Map(session.groups.map((g) => [g.id, g]));
  const memberships = (session.me && session.me.groups) || [];
  return memberships.map((m) => {
    const group = names.get(m.group_id) || {};
    return {
      id: m.group_id,
      name: group.name || "",
      description: group.description || "",
      role: m.role,
      memberCount: group.member_count,
    };
  });
}

export function groupsWithRole(role) {
  return myGroups().filter((g) => g.role === role);
}

export function groupById(id) {
  return myGroups().find((g) => g.id === id) || null;
}

export function displayName() {
  const me = session.me;
  return (me && (me.display_name || me.email)) || "";
}
