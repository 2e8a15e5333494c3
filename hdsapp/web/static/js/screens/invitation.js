// Accepting an invitation: the link a coordinator sends is /#/invitations/{token}. The token
// stays in the fragment (never sent to the server in a URL, never in its logs); it is posted
// once, by the signed-in invitee, to POST /api/v1/invitations/{token}/accept.

import { api } from "../api.js";
import { h } from "../dom.js";
import { t } from "../i18n.js";
import { groupById, refreshMe } from "../session.js";
import { alertBox, errorMessage, icon, roleLabel } from "../ui.js";

export async function render({ view, params }) {
  const token = decodeURIComponent(params[0]);
  const status = h("div", { "aria-live": "assertive" });
  const accept = h("button", { type: "button", class: "btn btn-primary", id: "accept-invitation" }, t("invite.accept"));
  const card = h(
    "section",
    { class: "card invitation", "aria-labelledby": "invitation-title" },
    h("span", { class: "avatar avatar-large", "aria-hidden": "true" }, icon("group")),
    h("h1", { id: "invitation-title", tabindex: "-1" }, t("invite.title")),
    h("p", { class: "muted" }, t("invite.text")),
    status,
    h("div", { class: "form-actions" }, accept, h("a", { class: "btn", href: "#/inbox" }, t("invite.later"))),
  );
  accept.addEventListener("click", async () => {
    accept.disabled = true;
    status.replaceChildren();
    try {
      const member = await api.post(`/api/v1/invitations/${encodeURIComponent(token)}/accept`);
      // The token is spent: take it out of the address bar and the history entry.
      history.replaceState(null, "", "#/inbox");
      await refreshMe();
      const group = groupById(member.group_id);
      card.replaceChildren(
        h("span", { class: "avatar avatar-large avatar-success", "aria-hidden": "true" }, icon("check")),
        h("h1", { tabindex: "-1", id: "invitation-title" }, t("invite.welcome")),
        h(
          "p",
          null,
          t("invite.joined", { group: (group && group.name) || "", role: roleLabel(member.role) }),
        ),
        h("div", { class: "form-actions" }, h("a", { class: "btn btn-primary", href: "#/inbox" }, t("invite.open"))),
      );
      card.querySelector("h1").focus();
    } catch (error) {
      accept.disabled = false;
      status.replaceChildren(alertBox(errorMessage(error)));
    }
  });
  view.append(h("div", { class: "narrow" }, card));
  return { title: t("invite.title") };
}
