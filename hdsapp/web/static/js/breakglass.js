// Break-the-glass: a clinician of the group who is not a participant may read a thread in an
// emergency, with a stated reason (20 characters at least), a fresh authentication (step-up)
// and for a limited time; the access is recorded and the coordinators are told.
// POST /api/v1/threads/{tid}/break-glass.

import { api } from "./api.js";
import { h, uid } from "./dom.js";
import { t } from "./i18n.js";
import { Cancelled, withStepUp } from "./stepup.js";
import { alertBox, errorMessage, field, icon, openModal } from "./ui.js";

const MIN_REASON = 20;

function ask(tid) {
  return new Promise((resolve) => {
    const titleId = uid("btg-title");
    const reason = field({
      label: t("btg.reason"),
      hint: t("btg.reason.hint"),
      input: h("textarea", { name: "reason", rows: "4", maxlength: "1000" }),
    });
    const status = h("div", { class: "form-status", "aria-live": "assertive" });
    const confirm = h("button", { type: "submit", class: "btn btn-danger" }, t("btg.confirm"));
    const cancel = h("button", { type: "button", class: "btn" }, t("action.cancel"));
    const form = h(
      "form",
      { class: "form", novalidate: true, id: "break-glass-form" },
      h("h2", { id: titleId, class: "dialog-title" }, t("btg.title")),
      alertBox(t("btg.warning"), "info"),
      reason.root,
      status,
      h("div", { class: "dialog-actions" }, cancel, confirm),
    );
    const finish = openModal(form, { labelledBy: titleId, onClose: resolve });
    cancel.addEventListener("click", () => finish(false));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      status.replaceChildren();
      const text = reason.input.value.split(/\s+/).filter(Boolean).join(" ");
      if (text.length < MIN_REASON) {
        reason.setError(t("btg.reason.short", { n: MIN_REASON }));
        reason.input.focus();
        return;
      }
      reason.setError("");
      confirm.disabled = true;
      try {
        // The step-up dialog opens over this one when the last authentication is too old.
        await withStepUp(() => api.post(`/api/v1/threads/${tid}/break-glass`, { reason: text }));
        finish(true);
      } catch (error) {
        confirm.disabled = false;
        if (!(error instanceof Cancelled)) status.replaceChildren(alertBox(errorMessage(error)));
      }
    });
    reason.input.focus();
  });
}

/** The panel shown instead of a thread the caller does not take part in. */
export function breakGlassPanel({ tid, onGranted }) {
  const open = h(
    "button",
    { type: "button", class: "btn btn-danger", id: "break-glass" },
    icon("alert"),
    t("btg.open"),
  );
  open.addEventListener("click", async () => {
    if (await ask(tid)) onGranted();
  });
  return h(
    "section",
    { class: "card", "aria-labelledby": "btg-panel-title" },
    h("h2", { class: "card-title", id: "btg-panel-title" }, t("thread.notParticipant")),
    h("p", { class: "muted" }, t("btg.explain")),
    h("div", { class: "form-actions" }, open),
  );
}
