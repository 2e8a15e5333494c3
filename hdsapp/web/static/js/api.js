// The one way the app talks to the server: same origin, JSON, problem+json errors.
//
// The session is the HttpOnly __Host- cookie the browser sends by itself: JavaScript never sees
// a session token. The CSRF token from the login answer lives in this module's memory only (no
// Web Storage) and goes out as X-CSRF-Token on every unsafe request.

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

let csrfToken = null;
const unauthenticatedListeners = new Set();

export function setCsrfToken(token) {
  csrfToken = token || null;
}

export function hasCsrfToken() {
  return csrfToken !== null;
}

/** Called when a request answers 401: the session ended (expired, revoked, logged out). */
export function onUnauthenticated(listener) {
  unauthenticatedListeners.add(listener);
}

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem || {};
    // problem+json names the error in "type": urn:hdsapp:problem:<code>.
    const type = String(this.problem.type || "");
    this.code = this.problem.code || type.replace(/^urn:hdsapp:problem:/, "");
  }
}

function buildUrl(path, query) {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "") continue;
    url.searchParams.set(key, String(value));
  }
  return url;
}

async function parse(response) {
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) return response.json();
  return response.text();
}

/**
 * request("GET", "/api/v1/me") → parsed body; throws ApiError on a non-2xx answer.
 * options: json (body), query (object), signal, expectUnauthenticated (a 401 is an answer,
 * not the end of the session: the sign-in probe), raw (return the Response).
 */
export async function request(method, path, options = {}) {
  const headers = { Accept: "application/json, application/problem+json;q=0.9, */*;q=0.1" };
  let body;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.json);
  }
  if (UNSAFE.has(method) && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const url = buildUrl(path, options.query);
  if (url.origin !== location.origin) throw new Error("refused: another origin");
  const response = await fetch(url, {
    method,
    headers,
    body,
    credentials: "same-origin",
    cache: "no-store",
    redirect: "error",
    signal: options.signal,
  });
  if (options.raw && response.ok) return response;
  const data = await parse(response).catch(() => null);
  if (!response.ok) {
    const problem = data && typeof data === "object" ? data : { detail: "" };
    if (response.status === 401 && !options.expectUnauthenticated) {
      for (const listener of unauthenticatedListeners) listener();
    }
    throw new ApiError(response.status, problem);
  }
  return data;
}

export const api = {
  get: (path, options) => request("GET", path, options),
  post: (path, json, options = {}) => request("POST", path, { ...options, json }),
  patch: (path, json, options = {}) => request("PATCH", path, { ...options, json }),
  delete: (path, options) => request("DELETE", path, options),
};
