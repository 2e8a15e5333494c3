// Live updates: one EventSource on GET /api/v1/me/events (same origin, the session cookie).
// The stream carries ids and counters only — thread id, last seq, read position, unread
// count — never a message or a patient; the screens fetch what changed through the API, which
// records each read. The server ends the stream every few minutes; EventSource reconnects.
//
// subscribe(listener): listener({type: "ready", reconnect}) when the stream (re)opens (catch up
// on what may have been missed), listener({type: "thread", thread, group, last_seq, read_seq,
// unread}) when a thread changed. A listener returning false is removed.

const PATH = "/api/v1/me/events";
const RETRY_CLOSED_MS = 30_000;

const listeners = new Set();
let source = null;
let wanted = false;
let opens = 0;
let retryTimer = null;

function emit(event) {
  for (const listener of [...listeners]) {
    let keep = true;
    try {
      keep = listener(event) !== false;
    } catch {
      keep = true;
    }
    if (!keep) listeners.delete(listener);
  }
}

function connect() {
  if (source || !wanted || !navigator.onLine) return;
  source = new EventSource(PATH);
  source.addEventListener("ready", () => {
    opens += 1;
    emit({ type: "ready", reconnect: opens > 1 });
  });
  source.addEventListener("thread", (event) => {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    emit({ type: "thread", ...data });
  });
  source.addEventListener("error", () => {
    // CONNECTING: the browser retries by itself. CLOSED: refused (signed out, server gone);
    // try again later, once.
    if (source && source.readyState === EventSource.CLOSED) {
      source = null;
      clearTimeout(retryTimer);
      retryTimer = setTimeout(connect, RETRY_CLOSED_MS);
    }
  });
}

function disconnect() {
  clearTimeout(retryTimer);
  if (source) source.close();
  source = null;
}

/** Open the stream (signed in, with a care group that has threads). */
export function start() {
  if (wanted || !("EventSource" in self)) return;
  wanted = true;
  // Offline, a stream only fails: close it, and open it again when the network is back.
  window.addEventListener("offline", disconnect);
  window.addEventListener("online", connect);
  connect();
}

export function stop() {
  wanted = false;
  disconnect();
}

export function subscribe(listener) {
  listeners.add(listener);
}
