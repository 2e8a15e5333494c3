// A case thread: its messages (newest shown, "load earlier" pages back with `after`), the
// composer and documents, tasks and the circle of care; the read position follows what was
// shown (POST …/read). A clinician of the group who is not a participant is offered
// break-the-glass. API.md §Case threads.
//
// Nothing of the thread is kept: it lives in this screen's memory and goes with it (messages
// waiting to be sent are in the encrypted outbox, outbox.js).

import { ApiError, api } from "../api.js";
import { h } from "../dom.js";
import { formatDateTime, t } from "../i18n.js";
import { attachmentBlock } from "../attachments.js";
import { breakGlassPanel } from "../breakglass.js";
import { composer } from "../composer.js";
import * as live from "../live.js";
import * as outbox from "../outbox.js";
import { groupById, groupsWithRole, session } from "../session.js";
import { alertBox, badge, errorMessage, pageHeader, professionLabel } from "../ui.js";
import { participantsCard } from "../threadpeople.js";
import { tasksCard } from "../threadtasks.js";

const PAGE = 30;
const MAX_PAGES = 20;

/** Every message after `after`, page by page (the list answers at most 100 at a time). */
async function messagesAfter(tid, after) {
  const items = [];
  let cursor = after;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const answer = await api.get(`/api/v1/threads/${tid}/messages`, { query: { after: cursor, limit: 100 } });
    items.push(...answer.items);
    if (!answer.next_cursor) break;
    cursor = answer.next_cursor;
  }
  return items;
}

function notParticipant(view, tid, rerender) {
  // A refusal says nothing of the thread, not even its group: break-the-glass is offered to a
  // clinician of a care group, and the server decides.
  view.append(pageHeader(t("thread.title"), null));
  if (groupsWithRole("clinician").length) {
    view.append(breakGlassPanel({ tid, onGranted: rerender }));
  } else {
    view.append(alertBox(t("thread.notParticipant"), "info"));
  }
  return { title: t("thread.title") };
}

export async function render({ view, params, isCurrent, navigate }) {
  const tid = params[0];
  const rerender = () => navigate(`/threads/${tid}`, { replace: true });
  let thread;
  try {
    thread = await api.get(`/api/v1/threads/${tid}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 403 && error.code === "forbidden-not-participant") {
      return notParticipant(view, tid, rerender);
    }
    throw error;
  }
  const group = groupById(thread.group_id);
  const participant = thread.access === "participant";
  const writable = participant && thread.status === "open";
  const me = session.me && session.me.id;

  let participants = [];
  try {
    participants = (await api.get(`/api/v1/threads/${tid}/participants`, { query: { limit: 100 } })).items;
  } catch {
    // Without the list, authors show without their profession.
  }
  const professions = new Map(participants.map((p) => [p.user_id, p.profession]));

  // -- messages --
  const list = h("ol", { class: "messages", id: "messages" });
  const shown = new Map(); // client_id -> element
  let first = null;
  let last = 0;
  let readSeq = thread.read_seq;

  function messageItem(message, { pending = false } = {}) {
    const mine = message.author === me;
    const profession = professionLabel(professions.get(message.author));
    return h(
      "li",
      {
        class: ["message", mine ? "is-mine" : null, pending ? "is-pending" : null],
        dataset: { seq: message.seq || "", clientId: message.client_id },
      },
      h(
        "p",
        { class: "message-head" },
        h("span", { class: "message-author" }, message.author_name || t("thread.someone")),
        profession ? h("span", { class: "message-role" }, profession) : null,
        h("time", { datetime: message.created_at }, formatDateTime(message.created_at)),
        pending ? badge(t("outbox.pending"), "warning") : null,
      ),
      message.body ? h("p", { class: "message-body" }, message.body) : null,
      message.attachment ? attachmentBlock(message.attachment) : null,
    );
  }

  function place(message, { pending = false, atStart = false } = {}) {
    const element = messageItem(message, { pending });
    const existing = shown.get(message.client_id);
    if (existing) existing.replaceWith(element);
    else if (atStart) list.prepend(element);
    else list.append(element);
    shown.set(message.client_id, element);
    if (!pending) {
      if (first === null || message.seq < first) first = message.seq;
      if (message.seq > last) last = message.seq;
    }
    return element;
  }

  async function markRead() {
    if (!participant || last <= readSeq) return;
    const seq = last;
    try {
      const state = await api.post(`/api/v1/threads/${tid}/read`, { seq });
      readSeq = state.read_seq;
    } catch {
      // The position catches up at the next message shown.
    }
  }

  const earlier = h("button", { type: "button", class: "btn btn-small", id: "load-earlier" }, t("thread.earlier"));
  earlier.addEventListener("click", async () => {
    earlier.disabled = true;
    const floor = Math.max(0, first - 1 - PAGE);
    try {
      const answer = await api.get(`/api/v1/threads/${tid}/messages`, {
        query: { after: floor, limit: Math.max(1, first - 1 - floor) },
      });
      const older = answer.items.filter((m) => m.seq < first);
      for (const message of older.reverse()) place(message, { atStart: true });
      earlier.hidden = floor === 0 || older.length === 0;
    } catch (error) {
      status.replaceChildren(alertBox(errorMessage(error)));
    }
    earlier.disabled = false;
  });

  const status = h("div", { class: "form-status", "aria-live": "assertive" });
  // The newest page; earlier ones on demand (a participant who joined without the history
  // gets none of them: the button then goes).
  const start = Math.max(0, thread.last_seq - PAGE);
  for (const message of await messagesAfter(tid, start)) place(message);
  earlier.hidden = start === 0;
  if (first === null) first = start + 1;

  async function catchUp() {
    if (!isCurrent()) return;
    try {
      for (const message of await messagesAfter(tid, last)) place(message);
      await markRead();
    } catch {
      // Offline or signed out: the next event or load catches up.
    }
  }

  // Messages waiting in the outbox for this thread, and their fate.
  for (const pending of await outbox.pendingFor(tid)) place(pending, { pending: true });
  outbox.onChange((change) => {
    if (!isCurrent()) return false;
    if (change.threadId !== tid) return true;
    if (change.message) place(change.message);
    if (change.failed) {
      shown.get(change.clientId)?.remove();
      shown.delete(change.clientId);
      status.replaceChildren(alertBox(t("outbox.failed")));
    }
    return true;
  });
  live.subscribe((event) => {
    if (!isCurrent()) return false;
    if (event.type === "ready" || (event.thread === tid && event.last_seq > last)) catchUp();
    return true;
  });

  const conversation = h(
    "section",
    { class: "card conversation", "aria-labelledby": "messages-title" },
    h("h2", { class: "card-title sr-only", id: "messages-title" }, t("thread.messages")),
    h("div", { class: "earlier" }, earlier),
    h("div", { role: "log", "aria-labelledby": "messages-title", class: "messages-log" }, list),
    list.children.length ? null : h("p", { class: "muted", id: "no-messages" }, t("thread.empty")),
    status,
    writable
      ? composer({
          tid,
          onPosted: (message) => {
            document.getElementById("no-messages")?.remove();
            place(message);
            readSeq = Math.max(readSeq, message.seq);
          },
          onQueued: (message) => {
            document.getElementById("no-messages")?.remove();
            place(message, { pending: true });
          },
        })
      : null,
  );

  const meta = [
    thread.priority === "urgent" ? badge(t("threads.urgent"), "danger") : null,
    thread.status !== "open" ? badge(t(`threads.status.${thread.status}`)) : null,
    thread.access === "break-glass"
      ? badge(t("thread.breakGlassUntil", { when: formatDateTime(thread.break_glass_expires_at) }), "warning")
      : null,
    thread.patient_display ? h("span", null, thread.patient_display) : null,
    group ? h("span", null, group.name) : null,
  ];

  view.append(
    pageHeader(thread.title, null),
    h("p", { class: "list-meta thread-meta" }, meta),
    h(
      "div",
      { class: "thread-layout" },
      conversation,
      h(
        "div",
        { class: "thread-side" },
        tasksCard({ tid, participants, writable, canRead: true }),
        participantsCard({ thread, participants, writable, me, group, onChange: rerender }),
      ),
    ),
  );
  markRead();
  return { title: thread.title };
}
