// The offline outbox of case threads.
//
// A message written while offline (or whose post failed on the network) waits in IndexedDB
// (database "hds-outbox") with the client_id it will be posted with: a replay can never post it
// twice (POST /api/v1/threads/{tid}/messages is idempotent on client_id). It is sent when the
// browser is back online, or at the next load.
//
// Nothing clinical is stored in clear: the body is sealed with AES-256-GCM under a WebCrypto
// key generated non-extractable and kept in the same database as a CryptoKey object (the
// structured clone keeps it non-extractable: no script, this one included, can read its
// bytes). The record holds the thread id, the client id, the time, the nonce and the
// ciphertext; the thread and client ids are bound to it as associated data. Logout deletes
// the database — key and messages (session.js wipes every IndexedDB database).

import { ApiError, api } from "./api.js";
import { session } from "./session.js";

export const OUTBOX_DATABASE = "hds-outbox";
const VERSION = 1;
const KEYS = "keys";
const MESSAGES = "messages";
const KEY_ID = "outbox";

/** Whether this browser can keep an encrypted outbox. */
export const available = "indexedDB" in self && Boolean(self.crypto && crypto.subtle);

const listeners = new Set();
let database = null;
let flushing = null;

function promised(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function done(transaction) {
  return new Promise((resolve, reject) => {
    transaction.oncomplete = () => resolve();
    transaction.onerror = transaction.onabort = () => reject(transaction.error);
  });
}

async function open() {
  if (database) return database;
  const request = indexedDB.open(OUTBOX_DATABASE, VERSION);
  request.onupgradeneeded = () => {
    const db = request.result;
    db.createObjectStore(KEYS, { keyPath: "id" });
    db.createObjectStore(MESSAGES, { keyPath: "client_id" }).createIndex("thread_id", "thread_id");
  };
  database = await promised(request);
  // Logout deletes the database: let it go at once.
  database.onversionchange = () => {
    database.close();
    database = null;
  };
  return database;
}

async function outboxKey(db) {
  const stored = await promised(db.transaction(KEYS).objectStore(KEYS).get(KEY_ID));
  if (stored) return stored.key;
  const fresh = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
  const transaction = db.transaction(KEYS, "readwrite");
  const store = transaction.objectStore(KEYS);
  // Another tab may have stored one meanwhile: the first one stays.
  const raced = await promised(store.get(KEY_ID));
  if (!raced) store.put({ id: KEY_ID, key: fresh });
  await done(transaction);
  return raced ? raced.key : fresh;
}

const encoder = new TextEncoder();

function boundTo(record) {
  return encoder.encode(`hds-outbox|${record.thread_id}|${record.client_id}`);
}

async function seal(key, record, body) {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const data = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: boundTo(record) },
    key,
    encoder.encode(body),
  );
  return { ...record, iv, data };
}

async function unseal(key, record) {
  const plain = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: record.iv, additionalData: boundTo(record) },
    key,
    record.data,
  );
  return new TextDecoder().decode(plain);
}

function asMessage(record, body) {
  const me = session.me || {};
  return {
    id: null,
    seq: null,
    thread_id: record.thread_id,
    client_id: record.client_id,
    author: record.author,
    author_name: me.id === record.author ? me.display_name : null,
    created_at: record.created_at,
    body,
    attachment: null,
  };
}

async function queue(threadId, body, clientId) {
  const db = await open();
  const key = await outboxKey(db);
  const record = {
    client_id: clientId,
    thread_id: threadId,
    author: session.me && session.me.id,
    created_at: new Date().toISOString(),
  };
  const transaction = db.transaction(MESSAGES, "readwrite");
  transaction.objectStore(MESSAGES).put(await seal(key, record, body));
  await done(transaction);
  return { pending: true, message: asMessage(record, body) };
}

/**
 * Post a message now, or keep it for later when the network is not there:
 * {message} once posted, {pending: true, message} when it waits. Refusals (4xx) are thrown.
 */
export async function send(threadId, body, clientId) {
  if (available && navigator.onLine === false) return queue(threadId, body, clientId);
  try {
    const message = await api.post(`/api/v1/threads/${threadId}/messages`, { body, client_id: clientId });
    return { message };
  } catch (error) {
    if (available && error instanceof TypeError) return queue(threadId, body, clientId);
    throw error;
  }
}

async function records(threadId) {
  if (!available) return [];
  const db = await open();
  const store = db.transaction(MESSAGES).objectStore(MESSAGES);
  const all = await promised(threadId ? store.index("thread_id").getAll(threadId) : store.getAll());
  return all.sort((a, b) => a.created_at.localeCompare(b.created_at));
}

/** The messages of a thread that wait to be sent (decrypted in memory, for display). */
export async function pendingFor(threadId) {
  const waiting = await records(threadId);
  if (!waiting.length) return [];
  const key = await outboxKey(await open());
  const shown = [];
  for (const record of waiting) shown.push(asMessage(record, await unseal(key, record)));
  return shown;
}

async function remove(clientId) {
  const transaction = (await open()).transaction(MESSAGES, "readwrite");
  transaction.objectStore(MESSAGES).delete(clientId);
  await done(transaction);
}

async function deliver() {
  const waiting = await records(null);
  if (!waiting.length) return;
  const key = await outboxKey(await open());
  for (const record of waiting) {
    let message;
    try {
      const body = await unseal(key, record);
      message = await api.post(`/api/v1/threads/${record.thread_id}/messages`, {
        body,
        client_id: record.client_id,
      });
    } catch (error) {
      // Still offline, signed out, or the server is unwell: try again later.
      if (!(error instanceof ApiError) || error.status === 401 || error.status === 429 || error.status >= 500) return;
      // Refused for good (thread closed, left the thread…): it cannot be delivered.
      await remove(record.client_id);
      emit({ threadId: record.thread_id, clientId: record.client_id, failed: true });
      continue;
    }
    await remove(record.client_id);
    emit({ threadId: record.thread_id, clientId: record.client_id, message });
  }
}

/** Send what waits (one delivery at a time: the same client_id never races itself). */
export function flush() {
  if (!available || !session.me) return Promise.resolve();
  if (!flushing) {
    flushing = deliver()
      .catch(() => {})
      .finally(() => {
        flushing = null;
      });
  }
  return flushing;
}

function emit(change) {
  for (const listener of [...listeners]) if (listener(change) === false) listeners.delete(listener);
}

/** listener({threadId, clientId, message}) once sent, ({…, failed: true}) when refused; a
 * listener returning false is removed. */
export function onChange(listener) {
  listeners.add(listener);
}

let started = false;
/** Deliver at start-up and whenever the browser comes back online. */
export function start() {
  if (started || !available) return;
  started = true;
  window.addEventListener("online", () => flush());
  flush();
}
