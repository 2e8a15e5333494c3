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

/**
 * upload("/api/v1/threads/…/attachments", formData, {onProgress}) → parsed body: a multipart
 * POST through XMLHttpRequest, the one browser API that reports upload progress
 * (onProgress(loaded, total)). Same origin, CSRF header, ApiError on a non-2xx answer, a
 * TypeError when the network fails (as fetch does).
 */
export function upload(path, form, { onProgress } = {}) {
  const url = buildUrl(path);
  if (url.origin !== location.origin) return Promise.reject(new Error("refused: another origin"));
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.withCredentials = false; // same origin: the cookie goes anyway
    xhr.setRequestHeader("Accept", "application/json, application/problem+json;q=0.9");
    if (csrfToken) xhr.setRequestHeader("X-CSRF-Token", csrfToken);
    if (onProgress) {
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) onProgress(event.loaded, event.total);
      });
    }
    xhr.addEventListener("error", () => reject(new TypeError("network error")));
    xhr.addEventListener("abort", () => reject(new TypeError("aborted")));
    xhr.addEventListener("load", () => {
      let data = null;
      try {
        data = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        data = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) return resolve(data);
      if (xhr.status === 401) for (const listener of unauthenticatedListeners) listener();
      reject(new ApiError(xhr.status, data && typeof data === "object" ? data : { detail: "" }));
    });
    xhr.send(form);
  });
}

export const api = {
  get: (path, options) => request("GET", path, options),
  post: (path, json, options = {}) => request("POST", path, { ...options, json }),
  patch: (path, json, options = {}) => request("PATCH", path, { ...options, json }),
  delete: (path, options) => request("DELETE", path, options),
};
