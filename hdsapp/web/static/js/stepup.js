// Step-up: sensitive actions (tokens, role changes, audit export) need a recent
// authentication. When the server answers 403 step-up-required, ask for the password and a
// fresh code in a modal dialog, POST /api/v1/auth/reauthenticate, then try the action again.

import { ApiError, api } from "./api.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";
import { alertBox, field, openModal } from "./ui.js";

export class Cancelled extends Error {
  constructor() {
    super("cancelled");
    this.name = "Cancelled";
  }
}

function ask() {
  return new Promise((resolve) => {
    const password = field({
      label: t("signin.password"),
      input: h("input", { type: "password", name: "password", autocomplete: "current-password" }),
    });
    const otp = field({
      label: t("signin.otp"),
      hint: t("signin.otp.hint"),
      input: h("input", {
        type: "text",
        name: "otp",
        inputmode: "numeric",
        autocomplete: "one-time-code",
        maxlength: "6",
        class: "input-otp",
      }),
    });
    const status = h("div", { class: "form-status", "aria-live": "assertive" });
    const confirm = h("button", { type: "submit", class: "btn btn-primary" }, t("stepup.confirm"));
    const cancel = h("button", { type: "button", class: "btn" }, t("action.cancel"));
    const form = h(
      "form",
      { class: "form", novalidate: true, method: "dialog" },
      h("h2", { id: "stepup-title", class: "dialog-title" }, t("stepup.title")),
      h("p", { class: "muted", id: "stepup-text" }, t("stepup.text")),
      password.root,
      otp.root,
      status,
      h("div", { class: "dialog-actions" }, cancel, confirm),
    );
    const finish = openModal(form, {
      labelledBy: "stepup-title",
      describedBy: "stepup-text",
      onClose: resolve,
    });
    cancel.addEventListener("click", () => finish(false));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      status.replaceChildren();
      const code = otp.input.value.replace(/\s/g, "");
      password.setError(password.input.value ? "" : t("signin.password.missing"));
      otp.setError(/^\d{6}$/.test(code) ? "" : t("signin.otp.invalid"));
      if (!password.input.value) return password.input.focus();
      if (!/^\d{6}$/.test(code)) return otp.input.focus();
      confirm.disabled = true;
      try {
        await api.post(
          "/api/v1/auth/reauthenticate",
          { password: password.input.value, otp: code },
          { expectUnauthenticated: true },
        );
        finish(true);
      } catch (error) {
        confirm.disabled = false;
        const message =
          error instanceof ApiError && error.code === "reauthenticate-with-provider"
            ? t("stepup.provider")
            : error instanceof ApiError && error.status === 429
              ? t("signin.error.throttled")
              : t("stepup.error");
        status.replaceChildren(alertBox(message));
        otp.input.value = "";
        otp.input.focus();
      }
    });
    password.input.focus();
  });
}

/** Run `action`; if the server wants a recent authentication, ask for it and run it again. */
export async function withStepUp(action) {
  try {
    return await action();
  } catch (error) {
    if (!(error instanceof ApiError) || error.code !== "step-up-required") throw error;
    if (!(await ask())) throw new Cancelled();
    return action();
  }
}
