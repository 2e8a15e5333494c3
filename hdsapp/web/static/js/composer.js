// Writing in a thread: a message (POST …/messages with a client_id made here, so a retry of
// the same message can never post it twice; offline, it waits in the encrypted outbox) and a
// document (multipart POST …/attachments, with its upload progress).

import { upload } from "./api.js";
import { h } from "./dom.js";
import { formatNumber, t } from "./i18n.js";
import * as outbox from "./outbox.js";
import { alertBox, errorMessage, field, icon } from "./ui.js";

const DOCUMENT_TYPES = ["report", "prescription", "photo", "ecg", "imaging", "lab-result", "letter", "other"];
const ACCEPT = "application/pdf,image/jpeg,image/png,image/heic,.pdf,.jpg,.jpeg,.png,.heic";

function messageForm({ tid, onPosted, onQueued, status }) {
  const text = field({
    label: t("composer.label"),
    input: h("textarea", { name: "body", rows: "3", maxlength: "20000", class: "composer-input" }),
  });
  const send = h("button", { type: "submit", class: "btn btn-primary", id: "send-message" }, icon("send"), t("composer.send"));
  const form = h(
    "form",
    { class: "form composer", novalidate: true, id: "composer" },
    text.root,
    h("div", { class: "form-actions" }, send),
  );
  // A failed send keeps its client_id: sending the same text again is the same message.
  let attempt = null;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.replaceChildren();
    const body = text.input.value;
    if (!body.trim()) {
      text.setError(t("composer.empty"));
      text.input.focus();
      return;
    }
    text.setError("");
    if (!attempt || attempt.body !== body) attempt = { body, clientId: crypto.randomUUID() };
    send.disabled = true;
    try {
      const result = await outbox.send(tid, body, attempt.clientId);
      attempt = null;
      text.input.value = "";
      if (result.pending) onQueued(result.message);
      else onPosted(result.message);
    } catch (error) {
      status.replaceChildren(alertBox(errorMessage(error)));
    }
    send.disabled = false;
    text.input.focus();
  });
  return form;
}

function documentForm({ tid, onPosted, status }) {
  const file = field({
    label: t("composer.file"),
    hint: t("composer.file.hint"),
    input: h("input", { type: "file", name: "file", accept: ACCEPT }),
  });
  const kind = field({
    label: t("composer.docType"),
    input: h(
      "select",
      { name: "document_type" },
      DOCUMENT_TYPES.map((type) => h("option", { value: type }, t(`attachment.type.${type}`))),
    ),
  });
  const caption = field({
    label: t("composer.caption"),
    input: h("input", { type: "text", name: "caption", maxlength: "20000", autocomplete: "off" }),
  });
  const progress = h("progress", { max: "100", value: "0", id: "upload-progress", "aria-label": t("composer.progress") });
  const percent = h("span", { class: "muted", "aria-live": "polite" });
  const progressRow = h("div", { class: "upload-progress", hidden: true }, progress, percent);
  const submit = h("button", { type: "submit", class: "btn btn-primary", id: "send-document" }, t("composer.sendDocument"));
  const form = h(
    "form",
    { class: "form form-grid", novalidate: true, id: "document-form" },
    file.root,
    kind.root,
    caption.root,
    progressRow,
    h("div", { class: "form-actions" }, submit),
  );
  let attempt = null;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.replaceChildren();
    const chosen = file.input.files && file.input.files[0];
    if (!chosen) {
      file.setError(t("composer.file.missing"));
      file.input.focus();
      return;
    }
    file.setError("");
    if (!attempt || attempt.file !== chosen) attempt = { file: chosen, clientId: crypto.randomUUID() };
    const data = new FormData();
    data.append("document_type", kind.input.value);
    data.append("body", caption.input.value);
    data.append("client_id", attempt.clientId);
    data.append("file", chosen, chosen.name);
    submit.disabled = true;
    progress.value = 0;
    percent.textContent = "";
    progressRow.hidden = false;
    try {
      const message = await upload(`/api/v1/threads/${tid}/attachments`, data, {
        onProgress: (loaded, total) => {
          const value = Math.round((loaded / total) * 100);
          progress.value = value;
          percent.textContent = `${formatNumber(value)} %`;
        },
      });
      attempt = null;
      form.reset();
      form.closest("details").open = false;
      onPosted(message);
    } catch (error) {
      status.replaceChildren(alertBox(errorMessage(error)));
    }
    progressRow.hidden = true;
    submit.disabled = false;
  });
  return form;
}

export function composer({ tid, onPosted, onQueued }) {
  const status = h("div", { class: "form-status", "aria-live": "assertive" });
  return h(
    "div",
    { class: "composer-box" },
    messageForm({ tid, onPosted, onQueued, status }),
    h(
      "details",
      { class: "disclosure", id: "attach" },
      h("summary", null, t("composer.attach")),
      documentForm({ tid, onPosted, status }),
    ),
    status,
  );
}
