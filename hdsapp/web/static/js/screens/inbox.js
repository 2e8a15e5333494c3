// Inbox: the case threads of my groups, unread first (GET /api/v1/groups/{gid}/threads), and
// my care groups. A row opens the thread; unread counts follow the live stream (live.js); a
// clinician starts a new thread from here.

import { ApiError, api } from "../api.js";
import { h } from "../dom.js";
import * as live from "../live.js";
import { formatDateTime, t, tn } from "../i18n.js";
import { displayName, groupsWithRole, myGroups } from "../session.js";
import { badge, emptyState, icon, pageHeader, roleLabel } from "../ui.js";

const ROLE_TONE = { coordinator: "info", auditor: "warning", clinician: "success" };
// Roles that take part in threads (hdsapp/policy/rules.toml, thread.list).
const THREAD_ROLES = new Set(["clinician", "coordinator"]);

function groupCard(group) {
  const links = [];
  if (group.role === "clinician") {
    links.push(h("a", { class: "btn btn-small", href: `#/patients/${group.id}` }, t("nav.patients")));
  }
  if (group.role === "coordinator") {
    links.push(h("a", { class: "btn btn-small", href: `#/coordination/${group.id}` }, t("inbox.manage")));
  }
  if (group.role === "auditor") {
    links.push(h("a", { class: "btn btn-small", href: `#/audit/${group.id}` }, t("inbox.audit")));
  }
  return h(
    "li",
    { class: "list-item" },
    h("span", { class: "avatar", "aria-hidden": "true" }, icon("group")),
    h(
      "div",
      { class: "list-main" },
      h("p", { class: "list-title" }, group.name || t("inbox.unnamedGroup")),
      h(
        "p",
        { class: "list-meta" },
        badge(roleLabel(group.role), ROLE_TONE[group.role] || "neutral"),
        typeof group.memberCount === "number"
          ? h("span", null, tn("inbox.members", group.memberCount))
          : null,
      ),
    ),
    links.length ? h("div", { class: "list-actions" }, links) : null,
  );
}

/** Threads of every group I take part in; null when the threads API is not there. */
async function loadThreads(groups) {
  const lists = await Promise.all(
    groups.map(async (group) => {
      try {
        const answer = await api.get(`/api/v1/groups/${group.id}/threads`, { query: { limit: 50 } });
        return answer.items.map((thread) => ({ ...thread, groupName: group.name }));
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) return null;
        throw error;
      }
    }),
  );
  if (lists.length && lists.every((list) => list === null)) return null;
  return lists
    .filter(Boolean)
    .flat()
    .sort(
      (a, b) =>
        (b.unread > 0) - (a.unread > 0) ||
        (b.priority === "urgent") - (a.priority === "urgent") ||
        Date.parse(b.last_activity_at) - Date.parse(a.last_activity_at),
    );
}

function unreadBadge(count) {
  return count > 0
    ? h("span", { class: "unread-count", "aria-label": tn("threads.unread", count) }, String(count))
    : null;
}

function threadRow(thread, showGroup) {
  const unread = thread.unread > 0;
  return h(
    "li",
    { class: ["list-item", "thread", unread ? "is-unread" : null], dataset: { threadId: thread.id } },
    h("span", { class: "avatar", "aria-hidden": "true" }, icon("inbox")),
    h(
      "div",
      { class: "list-main" },
      h("p", { class: "list-title" }, h("a", { class: "thread-link", href: `#/threads/${thread.id}` }, thread.title)),
      h(
        "p",
        { class: "list-meta" },
        thread.priority === "urgent" ? badge(t("threads.urgent"), "danger") : null,
        thread.status !== "open" ? badge(t(`threads.status.${thread.status}`)) : null,
        thread.access === "break-glass" ? badge(t("threads.breakGlass"), "warning") : null,
        thread.patient_display ? h("span", null, thread.patient_display) : null,
        showGroup ? h("span", null, thread.groupName) : null,
        h("span", null, formatDateTime(thread.last_activity_at)),
      ),
    ),
    unreadBadge(thread.unread),
  );
}

/** A live event about a thread: its row's unread count, or the whole list when it is new. */
function follow(list, heading, reload) {
  live.subscribe((event) => {
    if (!list.isConnected) return false;
    if (event.type === "ready") {
      if (event.reconnect) reload();
      return true;
    }
    const row = list.querySelector(`li[data-thread-id="${CSS.escape(event.thread)}"]`);
    if (!row) {
      reload();
      return false;
    }
    row.querySelector(".unread-count")?.remove();
    const badgeEl = unreadBadge(event.unread);
    if (badgeEl) row.append(badgeEl);
    row.classList.toggle("is-unread", event.unread > 0);
    const count = list.querySelectorAll("li.is-unread").length;
    heading.replaceChildren(
      t("inbox.threads"),
      count ? h("span", { class: "muted" }, ` · ${tn("threads.unreadThreads", count)}`) : "",
    );
    return true;
  });
}

export async function render({ view, navigate, isCurrent }) {
  const groups = myGroups();
  const threadGroups = groups.filter((g) => THREAD_ROLES.has(g.role));
  const threads = threadGroups.length ? await loadThreads(threadGroups) : null;

  let threadSection;
  if (threads === null) {
    threadSection = h(
      "section",
      { class: "card card-muted", "aria-labelledby": "inbox-threads" },
      h("h2", { class: "card-title", id: "inbox-threads" }, t("inbox.threads")),
      emptyState(t("inbox.threads.soon.title"), t("inbox.threads.soon.body"), "inbox"),
    );
  } else {
    const unread = threads.filter((thread) => thread.unread > 0).length;
    const heading = h(
      "h2",
      { class: "card-title", id: "inbox-threads" },
      t("inbox.threads"),
      unread ? h("span", { class: "muted" }, ` · ${tn("threads.unreadThreads", unread)}`) : null,
    );
    const list = h(
      "ul",
      { class: "list", id: "thread-list", hidden: !threads.length },
      threads.map((th) => threadRow(th, threadGroups.length > 1)),
    );
    follow(list, heading, () => isCurrent() && navigate("/inbox", { replace: true }));
    const clinicianGroups = groupsWithRole("clinician");
    threadSection = h(
      "section",
      { class: "card", "aria-labelledby": "inbox-threads" },
      heading,
      // Kept (hidden) when empty: a thread arriving live reloads the list.
      threads.length ? list : [emptyState(t("threads.none.title"), t("threads.none.body"), "inbox"), list],
      clinicianGroups.length
        ? h(
            "div",
            { class: "form-actions" },
            clinicianGroups.map((group) =>
              h(
                "a",
                { class: "btn btn-primary", href: `#/groups/${group.id}/threads/new`, id: `new-thread-${group.id}` },
                icon("plus"),
                clinicianGroups.length > 1 ? t("newthread.in", { group: group.name }) : t("newthread.open"),
              ),
            ),
          )
        : null,
    );
  }

  view.append(
    pageHeader(t("inbox.title"), t("inbox.welcome", { name: displayName() })),
    threadSection,
    h(
      "section",
      { class: "card", "aria-labelledby": "inbox-groups" },
      h("h2", { class: "card-title", id: "inbox-groups" }, t("inbox.groups")),
      groups.length
        ? h("ul", { class: "list", id: "group-list" }, groups.map(groupCard))
        : emptyState(t("inbox.noGroups.title"), t("inbox.noGroups.body"), "group"),
    ),
  );
  return { title: t("inbox.title") };
}
