// The tasks of a thread (FHIR-like Task): list, create (assignee among the participants, due
// date) and move along their statuses. GET/POST /api/v1/threads/{tid}/tasks, PATCH /api/v1/tasks/{id}.

import { api } from "./api.js";
import { h } from "./dom.js";
import { formatDate, t } from "./i18n.js";
import { alertBox, badge, errorMessage, field, section, toast } from "./ui.js";

// The transitions the server accepts (hdsapp.threads.service.TASK_TRANSITIONS).
const NEXT = {
  requested: ["accepted", "in-progress", "cancelled"],
  accepted: ["in-progress", "cancelled"],
  "in-progress": ["completed", "cancelled"],
  completed: [],
  cancelled: [],
};
const TONE = { requested: "info", accepted: "info", "in-progress": "warning", completed: "success" };

export function tasksCard({ tid, participants, writable }) {
  const names = new Map(participants.map((p) => [p.user_id, p.display_name]));
  const list = h("ul", { class: "list", id: "task-list" });
  const status = h("div", { class: "form-status", "aria-live": "assertive" });

  function taskRow(task) {
    const moves = writable ? NEXT[task.status] : [];
    const select = h(
      "select",
      { class: "select-compact", "aria-label": t("tasks.status.of", { task: task.description }) },
      moves.map((next) => h("option", { value: next }, t(`tasks.status.${next}`))),
    );
    const apply = h("button", { type: "button", class: "btn btn-small" }, t("tasks.status.apply"));
    apply.addEventListener("click", async () => {
      apply.disabled = true;
      try {
        await api.patch(`/api/v1/tasks/${task.id}`, { status: select.value });
        toast(t("tasks.updated"));
        await refresh();
      } catch (error) {
        apply.disabled = false;
        status.replaceChildren(alertBox(errorMessage(error)));
      }
    });
    return h(
      "li",
      { class: "list-item task", dataset: { taskId: task.id } },
      h(
        "div",
        { class: "list-main" },
        h("p", { class: "list-title" }, task.description),
        h(
          "p",
          { class: "list-meta" },
          badge(t(`tasks.status.${task.status}`), TONE[task.status] || "neutral"),
          task.assignee ? h("span", null, names.get(task.assignee) || t("thread.someone")) : null,
          task.due_date ? h("span", null, t("tasks.due", { when: formatDate(task.due_date) })) : null,
        ),
      ),
      moves.length ? h("div", { class: "list-actions" }, select, apply) : null,
    );
  }

  async function refresh() {
    try {
      const answer = await api.get(`/api/v1/threads/${tid}/tasks`, { query: { limit: 100 } });
      list.replaceChildren(
        ...(answer.items.length ? answer.items.map(taskRow) : [h("li", { class: "list-empty" }, t("tasks.none"))]),
      );
    } catch (error) {
      list.replaceChildren(h("li", null, alertBox(errorMessage(error))));
    }
  }

  const description = field({
    label: t("tasks.description"),
    input: h("textarea", { name: "description", rows: "2", maxlength: "2000" }),
  });
  const assignee = field({
    label: t("tasks.assignee"),
    input: h(
      "select",
      { name: "assignee" },
      h("option", { value: "" }, t("tasks.assignee.none")),
      participants.map((p) => h("option", { value: p.user_id }, p.display_name)),
    ),
  });
  const due = field({ label: t("tasks.dueDate"), input: h("input", { type: "date", name: "due_date" }) });
  const form = h(
    "form",
    { class: "form", novalidate: true, id: "task-form" },
    description.root,
    assignee.root,
    due.root,
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "btn btn-primary" }, t("tasks.create"))),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.replaceChildren();
    const text = description.input.value.trim();
    description.setError(text ? "" : t("tasks.description.missing"));
    if (!text) return description.input.focus();
    try {
      await api.post(`/api/v1/threads/${tid}/tasks`, {
        description: text,
        assignee: assignee.input.value || null,
        due_date: due.input.value || null,
      });
      form.reset();
      form.closest("details").open = false;
      toast(t("tasks.created"));
      await refresh();
    } catch (error) {
      status.replaceChildren(alertBox(errorMessage(error)));
    }
  });

  refresh();
  return section(
    t("tasks.title"),
    list,
    status,
    writable ? h("details", { class: "disclosure" }, h("summary", null, t("tasks.new")), form) : null,
  );
}
