// The offline outbox: the boundary the case-thread screens will use (threads part, not built yet).
//
// Design, so the shell does not have to change when it arrives:
// - a message written offline is kept in IndexedDB (database "hds-outbox") with the client_id
//   it will be posted with, so a replay after reconnecting can never post it twice
//   (POST /api/v1/threads/{tid}/messages is idempotent on client_id);
// - drafts are encrypted at rest in the browser with a non-extractable WebCrypto key kept in the
//   same database, and are deleted with everything else at logout (session.js wipes every
//   IndexedDB database, cache and storage entry);
// - live updates (new messages, unread counts) come from the same origin and feed the inbox.
//
// Nothing here pretends to work today: no queue, no sync.

export const OUTBOX_DATABASE = "hds-outbox";

/** Whether the outbox exists in this build. The thread screens check this before offering offline drafts. */
export const available = false;
