// An attachment in a message: its name, type and size, a preview on demand (images and PDF,
// through a blob: URL of the decrypted bytes, revoked when replaced or when the screen goes)
// and a download link. A preview is a read of the document: the server records it.

import { api } from "./api.js";
import { h } from "./dom.js";
import { formatNumber, t } from "./i18n.js";
import { alertBox, errorMessage, icon } from "./ui.js";

const IMAGE = /^image\/(jpeg|png)$/;
const PDF = "application/pdf";

export function sizeLabel(bytes) {
  if (bytes < 1024) return t("attachment.bytes", { n: formatNumber(bytes) });
  if (bytes < 1024 * 1024) return t("attachment.kb", { n: formatNumber(Math.round(bytes / 1024)) });
  return t("attachment.mb", { n: formatNumber(Math.round((bytes / 1024 / 1024) * 10) / 10) });
}

export function canPreview(contentType) {
  return IMAGE.test(contentType) || contentType === PDF;
}

/** Blob URLs made by previews: revoked when the page shows another screen. */
const made = new Set();
window.addEventListener("hashchange", () => {
  for (const url of made) URL.revokeObjectURL(url);
  made.clear();
});

async function preview(attachment, box, button) {
  button.disabled = true;
  try {
    const response = await api.get(`/api/v1/attachments/${attachment.id}`, { raw: true });
    const blob = new Blob([await response.blob()], { type: attachment.content_type });
    const url = URL.createObjectURL(blob);
    made.add(url);
    const name = attachment.filename || t(`attachment.type.${attachment.document_type}`);
    box.replaceChildren(
      attachment.content_type === PDF
        ? h("iframe", { class: "attachment-pdf", src: url, title: t("attachment.previewOf", { name }) })
        : h("img", { class: "attachment-image", src: url, alt: t("attachment.previewOf", { name }) }),
    );
    button.hidden = true;
  } catch (error) {
    button.disabled = false;
    box.replaceChildren(alertBox(errorMessage(error)));
  }
}

export function attachmentBlock(attachment) {
  const name = attachment.filename || t(`attachment.type.${attachment.document_type}`);
  const box = h("div", { class: "attachment-preview" });
  const actions = [];
  if (canPreview(attachment.content_type)) {
    const button = h(
      "button",
      { type: "button", class: "btn btn-small", "aria-label": t("attachment.preview.named", { name }) },
      icon("eye"),
      t("attachment.preview"),
    );
    button.addEventListener("click", () => preview(attachment, box, button));
    actions.push(button);
  }
  actions.push(
    h(
      "a",
      {
        class: "btn btn-small",
        href: `/api/v1/attachments/${attachment.id}`,
        download: attachment.filename || "",
        "aria-label": t("attachment.download.named", { name }),
      },
      icon("download"),
      t("attachment.download"),
    ),
  );
  return h(
    "div",
    { class: "attachment", dataset: { attachmentId: attachment.id } },
    h(
      "p",
      { class: "attachment-name" },
      icon("file"),
      h("span", null, name),
      h(
        "span",
        { class: "muted" },
        ` · ${t(`attachment.type.${attachment.document_type}`)} · ${sizeLabel(attachment.size)}`,
      ),
    ),
    h("div", { class: "list-actions attachment-actions" }, actions),
    box,
  );
}
