// Inbox. The case threads (GET /api/v1/groups/{gid}/threads) arrive with the threads part;
// until then the inbox lists the care groups the user belongs to, from GET /api/v1/me.

import { h } from "../dom.js";
import { t, tn } from "../i18n.js";
import { displayName, myGroups } from "../session.js";
import { badge, emptyState, icon, pageHeader, roleLabel } from "../ui.js";

const ROLE_TONE = { coordinator: "info", auditor: "warning", clinician: "success" };

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

export async function render({ view }) {
  const groups = myGroups();
  view.append(
    pageHeader(t("inbox.title"), t("inbox.welcome", { name: displayName() })),
    h(
      "section",
      { class: "card", "aria-labelledby": "inbox-groups" },
      h("h2", { class: "card-title", id: "inbox-groups" }, t("inbox.groups")),
      groups.length
        ? h("ul", { class: "list", id: "group-list" }, groups.map(groupCard))
        : emptyState(t("inbox.noGroups.title"), t("inbox.noGroups.body"), "group"),
    ),
    h(
      "section",
      { class: "card card-muted", "aria-labelledby": "inbox-threads" },
      h("h2", { class: "card-title", id: "inbox-threads" }, t("inbox.threads")),
      emptyState(t("inbox.threads.soon.title"), t("inbox.threads.soon.body"), "inbox"),
    ),
  );
  return { title: t("inbox.title") };
}
