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

async function precache() {
  const cache = await caches.open(CACHE);
  // cache: "reload" bypasses the HTTP cache, so the shell is the version just deployed.
  await cache.addAll(SHELL.files.map((url) => new Request(url, { cache: "reload" })));
}

async function dropOtherCaches() {
  // Only the current shell may remain: older shells and anything else go.
  for (const name of await caches.keys()) {
    if (name !== CACHE) await caches.delete(name);
  }
}

self.addEventListener("install", (event) => {
  event.waitUntil(precache().then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(dropOtherCaches().then(() => self.clients.claim()));
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

// The page asks this after every start. After a logout wiped every cache (and Chromium may
// have revived this very registration when the page registered again), the shell is fetched
// again — only the shell — and the page is taken under control.
self.addEventListener("message", (event) => {
  if (event.data !== "ensure-shell") return;
  event.waitUntil(
    (async () => {
      if (!(await caches.has(CACHE))) await precache();
      await dropOtherCaches();
      await self.clients.claim();
      if (event.source) event.source.postMessage({ type: "shell", version: SHELL.version });
    })(),
  );
});
