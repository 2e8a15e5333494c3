// Small building blocks shared by the screens: icons, toast, form fields, panels.

import { $, h, uid } from "./dom.js";
import { has, t } from "./i18n.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const ICONS = {
  inbox: "M4 13h4l2 3h4l2-3h4M4 13l2-8h12l2 8v6H4z",
  team: "M9 11a3 3 0 1 0 0-6 3 3 0 0 0 0 6zm-6 9c0-3.3 2.7-6 6-6s6 2.7 6 6M16 5.2a3 3 0 0 1 0 5.6M18 14.3c1.8.9 3 2.8 3 5",
  shield: "M12 3l8 3v6c0 4.5-3.4 8.2-8 9-4.6-.8-8-4.5-8-9V6zM8.5 12l2.5 2.5 4.5-5",
  gear: "M12 15a3 3 0 1 0 0-6 3 3 0 0 0 0 6zM19.4 13a7.5 7.5 0 0 0 0-2l2-1.6-2-3.4-2.4 1a7.6 7.6 0 0 0-1.7-1L15 3.4h-4l-.4 2.6a7.6 7.6 0 0 0-1.7 1l-2.4-1-2 3.4L6.6 11a7.5 7.5 0 0 0 0 2l-2 1.6 2 3.4 2.4-1c.5.4 1.1.8 1.7 1l.4 2.6h4l.4-2.6c.6-.2 1.2-.6 1.7-1l2.4 1 2-3.4z",
  logout: "M9 20H6a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2h3M16 17l5-5-5-5M21 12H9",
  eye: "M2 12s3.6-7 10-7 10 7 10 7-3.6 7-10 7S2 12 2 12zm10 3a3 3 0 1 0 0-6 3 3 0 0 0 0 6z",
  key: "M15 7a4 4 0 1 1-3.9 4.9L4 19v2h3v-2h2v-2h2l1.1-1.1A4 4 0 0 1 15 7zm1.5 2.5h.01",
  group: "M3 20v-1a5 5 0 0 1 5-5h2a5 5 0 0 1 5 5v1M9 11a3.5 3.5 0 1 0 0-7 3.5 3.5 0 0 0 0 7zM21 20v-1a4 4 0 0 0-3-3.9M16 4.1a3.5 3.5 0 0 1 0 6.8",
  check: "M5 12.5l4.5 4.5L19 7.5",
  alert: "M12 9v4m0 3.5h.01M10.3 4.2L2.6 17.5A2 2 0 0 0 4.3 20.5h15.4a2 2 0 0 0 1.7-3L13.7 4.2a2 2 0 0 0-3.4 0z",
  copy: "M9 9h10v12H9zM5 15H4V3h12v1",
  globe: "M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18zM3 12h18M12 3c2.5 2.5 3.8 5.5 3.8 9s-1.3 6.5-3.8 9c-2.5-2.5-3.8-5.5-3.8-9S9.5 5.5 12 3z",
  lock: "M6 11h12v10H6zM8.5 11V7.5a3.5 3.5 0 0 1 7 0V11",
  patient: "M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM4 21a8 8 0 0 1 16 0M17 3v4M15 5h4",
  search: "M11 18a7 7 0 1 0 0-14 7 7 0 0 0 0 14zM21 21l-5-5",
  download: "M12 4v11M7 10l5 5 5-5M5 20h14",
  file: "M14 3H6v18h12V7zM14 3v4h4",
  send: "M4 12l16-8-6 16-2.5-6.5zM13.5 13.5L20 4",
  plus: "M12 5v14M5 12h14",
  task: "M9 6h11M9 12h11M9 18h11M4 6l1 1 2-2M4 12l1 1 2-2M4 18l1 1 2-2",
  clock: "M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18zM12 7v5l3 2",
};

export function icon(name) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", `icon icon-${name}`);
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", ICONS[name] || "");
  svg.append(path);
  return svg;
}

let toastTimer = null;
export function toast(message) {
  const box = $("#toast");
  box.textContent = message;
  box.classList.add("is-visible");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    box.classList.remove("is-visible");
    box.textContent = "";
  }, 5000);
}

/**
 * A labelled form field: field({label, hint, input: h("input", …)}) wires for/id,
 * aria-describedby (hint and error) and returns {root, input, setError}. `control` is what to
 * show in place of the bare input (the input wrapped with a button, say).
 */
export function field({ label, hint, input, control, className }) {
  const id = input.id || uid("field");
  input.id = id;
  const hintId = hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  const error = h("p", { class: "field-error", id: errorId, hidden: true });
  const described = [hintId].filter(Boolean);
  if (described.length) input.setAttribute("aria-describedby", described.join(" "));
  const root = h(
    "div",
    { class: ["field", className] },
    h("label", { for: id, class: "field-label" }, label),
    hint ? h("p", { class: "field-hint", id: hintId }, hint) : null,
    control || input,
    error,
  );
  function setError(message) {
    error.textContent = message || "";
    error.hidden = !message;
    if (message) {
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", [...described, errorId].join(" "));
    } else {
      input.removeAttribute("aria-invalid");
      if (described.length) input.setAttribute("aria-describedby", described.join(" "));
      else input.removeAttribute("aria-describedby");
    }
  }
  return { root, input, setError };
}

export function pageHeader(title, subtitle, ...actions) {
  return h(
    "header",
    { class: "page-head" },
    h(
      "div",
      { class: "page-head-text" },
      h("h1", { tabindex: "-1" }, title),
      subtitle ? h("p", { class: "page-sub" }, subtitle) : null,
    ),
    actions.length ? h("div", { class: "page-actions" }, actions) : null,
  );
}

export function section(title, ...children) {
  const id = uid("section");
  return h(
    "section",
    { class: "card", "aria-labelledby": id },
    h("h2", { id, class: "card-title" }, title),
    children,
  );
}

export function badge(text, tone = "neutral") {
  return h("span", { class: `badge badge-${tone}` }, text);
}

export function emptyState(title, body, iconName = "inbox") {
  return h(
    "div",
    { class: "empty" },
    icon(iconName),
    h("p", { class: "empty-title" }, title),
    body ? h("p", { class: "empty-body" }, body) : null,
  );
}

export function alertBox(message, tone = "error") {
  return h(
    "div",
    { class: `alert alert-${tone}`, role: tone === "error" ? "alert" : "status" },
    icon(tone === "error" ? "alert" : "check"),
    h("span", null, message),
  );
}

/** A message for an API error, in the user's language (never the server's raw detail). */
export function errorMessage(error) {
  if (error instanceof TypeError) return t("error.offline.body");
  if (error && error.code && has(`problem.${error.code}`)) return t(`problem.${error.code}`);
  const status = error && error.status;
  if (status === 401) return t("error.401");
  if (status === 403) return t("error.403");
  if (status === 404) return t("error.404");
  if (status === 409) return t("error.409");
  if (status === 422 || status === 400) return t("error.422");
  if (status === 429) return t("error.429");
  return t("error.status", { status: status || "?" });
}

export function roleLabel(role) {
  return t(`role.${role}`);
}

/**
 * Show `content` in a modal dialog; returns finish(value), which closes and removes it and calls
 * onClose(value) once. Escape (the dialog's cancel) finishes with false.
 */
export function openModal(content, { labelledBy, describedBy, onClose }) {
  const dialog = h(
    "dialog",
    { class: "dialog", "aria-labelledby": labelledBy, "aria-describedby": describedBy },
    content,
  );
  let done = false;
  const finish = (value) => {
    if (done) return;
    done = true;
    dialog.close();
    dialog.remove();
    onClose(value);
  };
  dialog.addEventListener("cancel", (event) => {
    event.preventDefault();
    finish(false);
  });
  document.body.append(dialog);
  dialog.showModal();
  return finish;
}

/** A modal confirmation: resolves true when confirmed, false when cancelled (Escape too). */
export function confirmDialog({ title, text, confirm, danger = false }) {
  return new Promise((resolve) => {
    const titleId = uid("dialog-title");
    const textId = uid("dialog-text");
    const yes = h(
      "button",
      { type: "button", class: ["btn", danger ? "btn-danger" : "btn-primary"] },
      confirm,
    );
    const no = h("button", { type: "button", class: "btn" }, t("action.cancel"));
    const dialog = h(
      "dialog",
      { class: "dialog", "aria-labelledby": titleId, "aria-describedby": textId },
      h(
        "div",
        { class: "form" },
        h("h2", { id: titleId, class: "dialog-title" }, title),
        h("p", { id: textId }, text),
        h("div", { class: "dialog-actions" }, no, yes),
      ),
    );
    const finish = (value) => {
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    yes.addEventListener("click", () => finish(true));
    no.addEventListener("click", () => finish(false));
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      finish(false);
    });
    document.body.append(dialog);
    dialog.showModal();
    no.focus();
  });
}

/** Links to the same screen for each group, when there is more than one. */
export function groupTabs(groups, currentId, hrefFor) {
  // An empty fragment when there is nothing to switch to (view.append takes no null).
  if (groups.length < 2) return document.createDocumentFragment();
  return h(
    "nav",
    { class: "tabs", "aria-label": t("groups.switch") },
    h(
      "ul",
      null,
      groups.map((group) =>
        h(
          "li",
          null,
          h(
            "a",
            {
              href: hrefFor(group.id),
              class: "tab",
              "aria-current": group.id === currentId ? "page" : null,
            },
            group.name || t("inbox.unnamedGroup"),
          ),
        ),
      ),
    ),
  );
}

/** Initials for an avatar ("Claire Martin" -> "CM"). */
export function initials(name) {
  const parts = String(name || "?")
    .replace(/^(dr|pr)\.?\s+/i, "")
    .split(/[\s-]+/)
    .filter(Boolean);
  return (parts[0]?.[0] || "?").toUpperCase() + (parts.length > 1 ? parts.at(-1)[0].toUpperCase() : "");
}

/** The label of a TRE_G15 profession code ("60" -> "Infirmier"); unknown codes as they are. */
export function professionLabel(code) {
  if (!code) return "";
  return has(`profession.${code}`) ? t(`profession.${code}`) : String(code);
}
