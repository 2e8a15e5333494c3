/* hdsapp service worker.
 *
 * It precaches the application shell — and only the shell — into a cache named after the
 * shell's version, serves shell files cache-first, and never touches /api or /fhir: those
 * requests are not intercepted at all (no respondWith), so health data never enters a cache.
 * The server writes the shell description below when it serves this file (hdsapp.web.shell):
 * any change to a shell file changes these bytes, which makes the browser install a new worker.
 */
const SHELL = "__HDS_SHELL__";
const CACHE = `hds-shell-${SHELL.version}`;
const FILES = new Set(SHELL.files);
const NETWORK_ONLY = /^\/(api|fhir)(\/|$)/;

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      // cache: "reload" bypasses the HTTP cache, so the shell is the version just deployed.
      await cache.addAll(SHELL.files.map((url) => new Request(url, { cache: "reload" })));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      // Only the current shell may remain: older shells and anything else go.
      for (const name of await caches.keys()) {
        if (name !== CACHE) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (NETWORK_ONLY.test(url.pathname)) return; // network only: not even respondWith
  // The app routes with the fragment (#/inbox), so every page of the app is "/".
  const key = request.mode === "navigate" && url.pathname === "/" ? "/" : url.pathname;
  if (!FILES.has(key) || (key !== "/" && url.search)) return;
  event.respondWith(
    (async () => {
      // caches.match with cacheName never creates the cache (caches.open would, even after
      // a logout deleted it).
      const hit = await caches.match(key, { cacheName: CACHE });
      return hit || fetch(request);
    })(),
  );
});

self.addEventListener("message", (event) => {
  if (event.data === "version" && event.source) {
    event.source.postMessage({ type: "version", version: SHELL.version });
  }
});
