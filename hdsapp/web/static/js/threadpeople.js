// The circle of care of a thread: who takes part, adding a member of the group (with or without
// the history), removing someone. GET/POST /api/v1/threads/{tid}/participants, DELETE …/{uid}.

import { api } from "./api.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";
import { alertBox, confirmDialog, errorMessage, field, initials, professionLabel, section, toast } from "./ui.js";

const CARE_ROLES = new Set(["clinician", "coordinator"]);

function personRow(person, { me, canRemove, onRemove }) {
  const name = person.display_name;
  const remove = canRemove
    ? h(
        "button",
        {
          type: "button",
          class: "btn btn-small btn-danger-quiet",
          "aria-label": t(person.user_id === me ? "people.leave" : "people.remove.named", { name }),
          on: { click: () => onRemove(person) },
        },
        t(person.user_id === me ? "people.leave" : "people.remove"),
      )
    : null;
  return h(
    "li",
    { class: "list-item", dataset: { userId: person.user_id } },
    h("span", { class: "avatar avatar-initials", "aria-hidden": "true" }, initials(name)),
    h(
      "div",
      { class: "list-main" },
      h("p", { class: "list-title" }, name, person.user_id === me ? h("span", { class: "muted" }, ` (${t("coord.you")})`) : null),
      person.profession ? h("p", { class: "list-meta" }, professionLabel(person.profession)) : null,
    ),
    remove ? h("div", { class: "list-actions" }, remove) : null,
  );
}

async function addForm({ thread, participants, status, onChange }) {
  let members = [];
  try {
    members = (await api.get(`/api/v1/groups/${thread.group_id}/members`, { query: { limit: 100 } })).items;
  } catch {
    return null;
  }
  const taken = new Set(participants.map((p) => p.user_id));
  const candidates = members.filter((m) => m.status === "active" && CARE_ROLES.has(m.role) && !taken.has(m.user_id));
  if (!candidates.length) return null;
  const who = field({
    label: t("people.add.who"),
    input: h("select", { name: "user_id" }, candidates.map((m) => h("option", { value: m.user_id }, m.display_name))),
  });
  const history = h("input", { type: "checkbox", name: "share_history", checked: true });
  const form = h(
    "form",
    { class: "form", novalidate: true, id: "participant-form" },
    who.root,
    h("label", { class: "choice" }, history, h("span", null, t("people.add.history"))),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "btn btn-primary" }, t("people.add"))),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api.post(`/api/v1/threads/${thread.id}/participants`, {
        user_id: who.input.value,
        share_history: history.checked,
      });
      toast(t("people.added"));
      onChange();
    } catch (error) {
      status.replaceChildren(alertBox(errorMessage(error)));
    }
  });
  return h("details", { class: "disclosure" }, h("summary", null, t("people.add.open")), form);
}

export function participantsCard({ thread, participants, writable, me, onChange }) {
  const status = h("div", { class: "form-status", "aria-live": "assertive" });
  async function onRemove(person) {
    const self = person.user_id === me;
    const ok = await confirmDialog({
      title: t(self ? "people.leave.title" : "people.remove.title", { name: person.display_name }),
      text: t(self ? "people.leave.text" : "people.remove.text"),
      confirm: t(self ? "people.leave" : "people.remove"),
      danger: true,
    });
    if (!ok) return;
    try {
      await api.delete(`/api/v1/threads/${thread.id}/participants/${person.user_id}`);
      toast(t("people.removed", { name: person.display_name }));
      onChange();
    } catch (error) {
      status.replaceChildren(alertBox(errorMessage(error)));
    }
  }
  const canRemove = thread.access === "participant";
  const card = section(
    t("people.title"),
    h(
      "ul",
      { class: "list", id: "participant-list" },
      participants.map((p) => personRow(p, { me, canRemove, onRemove })),
    ),
    status,
  );
  if (writable) {
    addForm({ thread, participants, status, onChange }).then((form) => form && card.append(form));
  }
  return card;
}
