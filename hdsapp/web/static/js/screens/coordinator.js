// Coordination of a care group: members (roles, suspension, removal) and invitations.
// API.md §Care groups. Changing a role needs a recent authentication (step-up dialog).

import { api } from "../api.js";
import { h, uid } from "../dom.js";
import { formatDate, formatDateTime, t, tn } from "../i18n.js";
import { groupById, groupsWithRole, session } from "../session.js";
import { Cancelled, withStepUp } from "../stepup.js";
import {
  alertBox,
  badge,
  confirmDialog,
  emptyState,
  errorMessage,
  field,
  groupTabs,
  icon,
  initials,
  pageHeader,
  professionLabel,
  roleLabel,
  section,
  toast,
} from "../ui.js";

const ROLES = ["clinician", "coordinator", "auditor"];
const RPPS = /^\d{11}$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

async function allPages(path, query = {}) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < 20; page += 1) {
    const answer = await api.get(path, { query: { ...query, cursor, limit: 100 } });
    items.push(...answer.items);
    cursor = answer.next_cursor;
    if (!cursor) break;
  }
  return items;
}

function roleSelect(value, label) {
  return h(
    "select",
    { "aria-label": label, class: "select-compact" },
    ROLES.map((role) => h("option", { value: role, selected: role === value }, roleLabel(role))),
  );
}

function inviteLink(token) {
  return `${location.origin}/#/invitations/${encodeURIComponent(token)}`;
}

function inviteForm(gid, onInvited) {
  const email = field({
    label: t("coord.invite.email"),
    input: h("input", { type: "email", name: "email", autocomplete: "off", autocapitalize: "none" }),
  });
  const rpps = field({
    label: t("coord.invite.rpps"),
    hint: t("coord.invite.rpps.hint"),
    input: h("input", { type: "text", name: "rpps", inputmode: "numeric", maxlength: "11" }),
  });
  const role = field({
    label: t("coord.invite.role"),
    input: roleSelect("clinician", null),
  });
  const endsId = uid("ends");
  const ends = field({
    label: t("coord.invite.ends"),
    input: h("input", { type: "date", name: "ends_at", id: endsId }),
  });
  ends.root.hidden = true;
  const external = h("input", { type: "checkbox", name: "external" });
  external.addEventListener("change", () => {
    ends.root.hidden = !external.checked;
  });
  const status = h("div", { "aria-live": "assertive" });
  const result = h("div", { "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: "btn btn-primary" }, t("coord.invite.submit"));
  const form = h(
    "form",
    { class: "form form-grid", novalidate: true, id: "invite-form" },
    email.root,
    rpps.root,
    role.root,
    h(
      "div",
      { class: "field" },
      h("label", { class: "choice" }, external, h("span", null, t("coord.invite.external"))),
    ),
    ends.root,
    h("div", { class: "form-actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.replaceChildren();
    result.replaceChildren();
    const body = { role: role.input.value, external: external.checked };
    const mail = email.input.value.trim();
    const number = rpps.input.value.replace(/\s/g, "");
    email.setError(mail && !EMAIL.test(mail) ? t("signin.email.invalid") : "");
    rpps.setError(number && !RPPS.test(number) ? t("coord.invite.rpps.invalid") : "");
    if (!mail && !number) email.setError(t("coord.invite.addressee"));
    if (email.input.getAttribute("aria-invalid")) return email.input.focus();
    if (rpps.input.getAttribute("aria-invalid")) return rpps.input.focus();
    if (mail) body.email = mail;
    if (number) body.rpps = number;
    if (external.checked) {
      if (!ends.input.value) {
        ends.setError(t("coord.invite.ends.missing"));
        return ends.input.focus();
      }
      ends.setError("");
      body.ends_at = new Date(`${ends.input.value}T23:59:59`).toISOString();
    }
    submit.disabled = true;
    try {
      const invitation = await api.post(`/api/v1/groups/${gid}/members`, body);
      form.reset();
      ends.root.hidden = true;
      const link = inviteLink(invitation.token);
      result.replaceChildren(
        h(
          "div",
          { class: "alert alert-success", role: "status" },
          h("p", null, h("strong", null, t("coord.invite.done", { who: invitation.email || invitation.rpps }))),
          h("p", null, t("coord.invite.share", { when: formatDateTime(invitation.expires_at) })),
          h(
            "div",
            { class: "secret-row" },
            h("code", { class: "secret", id: "invite-link" }, link),
            h(
              "button",
              {
                type: "button",
                class: "btn btn-small",
                on: {
                  click: async () => {
                    try {
                      await navigator.clipboard.writeText(link);
                      toast(t("coord.invite.copied"));
                    } catch {
                      toast(t("tokens.copy.failed"));
                    }
                  },
                },
              },
              icon("copy"),
              t("tokens.copy"),
            ),
          ),
        ),
      );
      await onInvited();
    } catch (error) {
      status.replaceChildren(alertBox(errorMessage(error)));
    } finally {
      submit.disabled = false;
    }
  });
  return h("div", null, form, status, result);
}

function invitationRow(gid, invitation, reload) {
  const who = invitation.email || invitation.rpps;
  const revoke = h(
    "button",
    {
      type: "button",
      class: "btn btn-small btn-danger-quiet",
      "aria-label": t("coord.invitations.revoke.named", { who }),
    },
    t("tokens.revoke"),
  );
  revoke.addEventListener("click", async () => {
    revoke.disabled = true;
    try {
      await api.delete(`/api/v1/groups/${gid}/invitations/${invitation.id}`);
      toast(t("coord.invitations.revoked"));
      await reload();
    } catch (error) {
      revoke.disabled = false;
      toast(errorMessage(error));
    }
  });
  return h(
    "li",
    { class: "list-item" },
    h("span", { class: "avatar", "aria-hidden": "true" }, icon("group")),
    h(
      "div",
      { class: "list-main" },
      h("p", { class: "list-title" }, who),
      h(
        "p",
        { class: "list-meta" },
        badge(roleLabel(invitation.role), "info"),
        invitation.external
          ? badge(t("coord.external.until", { when: formatDate(invitation.ends_at) }), "warning")
          : null,
        h("span", null, t("coord.invitations.expires", { when: formatDateTime(invitation.expires_at) })),
      ),
    ),
    h("div", { class: "list-actions" }, revoke),
  );
}

function memberRow(gid, member, reload, status) {
  const self = session.me && member.user_id === session.me.id;
  const actions = [];
  const meta = [
    badge(roleLabel(member.role), member.role === "coordinator" ? "info" : "neutral"),
    member.status === "suspended" ? badge(t("coord.status.suspended"), "danger") : null,
    member.external && member.ends_at
      ? badge(t("coord.external.until", { when: formatDate(member.ends_at) }), member.expired ? "danger" : "warning")
      : null,
    member.profession ? h("span", null, professionLabel(member.profession)) : null,
    member.email ? h("span", null, member.email) : null,
    member.rpps ? h("span", null, `RPPS ${member.rpps}`) : null,
  ];
  if (!self) {
    const select = roleSelect(member.role, t("coord.role.of", { name: member.display_name }));
    const apply = h(
      "button",
      { type: "button", class: "btn btn-small", disabled: true },
      t("coord.role.apply"),
    );
    select.addEventListener("change", () => {
      apply.disabled = select.value === member.role;
    });
    apply.addEventListener("click", async () => {
      apply.disabled = true;
      status.replaceChildren();
      try {
        await withStepUp(() =>
          api.patch(`/api/v1/groups/${gid}/members/${member.user_id}`, { role: select.value }),
        );
        toast(t("coord.role.changed", { name: member.display_name, role: roleLabel(select.value) }));
        await reload();
      } catch (error) {
        apply.disabled = false;
        if (!(error instanceof Cancelled)) status.replaceChildren(alertBox(errorMessage(error)));
      }
    });
    const suspended = member.status === "suspended";
    const toggle = h(
      "button",
      { type: "button", class: "btn btn-small" },
      suspended ? t("coord.reactivate") : t("coord.suspend"),
    );
    toggle.setAttribute(
      "aria-label",
      t(suspended ? "coord.reactivate.named" : "coord.suspend.named", { name: member.display_name }),
    );
    toggle.addEventListener("click", async () => {
      status.replaceChildren();
      if (!suspended) {
        const ok = await confirmDialog({
          title: t("coord.suspend.title", { name: member.display_name }),
          text: t("coord.suspend.text"),
          confirm: t("coord.suspend"),
          danger: true,
        });
        if (!ok) return;
      }
      toggle.disabled = true;
      try {
        await api.patch(`/api/v1/groups/${gid}/members/${member.user_id}`, {
          status: suspended ? "active" : "suspended",
        });
        toast(t(suspended ? "coord.reactivated" : "coord.suspended", { name: member.display_name }));
        await reload();
      } catch (error) {
        toggle.disabled = false;
        status.replaceChildren(alertBox(errorMessage(error)));
      }
    });
    const remove = h(
      "button",
      {
        type: "button",
        class: "btn btn-small btn-danger-quiet",
        "aria-label": t("coord.remove.named", { name: member.display_name }),
      },
      t("coord.remove"),
    );
    remove.addEventListener("click", async () => {
      status.replaceChildren();
      const ok = await confirmDialog({
        title: t("coord.remove.title", { name: member.display_name }),
        text: t("coord.remove.text"),
        confirm: t("coord.remove"),
        danger: true,
      });
      if (!ok) return;
      remove.disabled = true;
      try {
        await api.delete(`/api/v1/groups/${gid}/members/${member.user_id}`);
        toast(t("coord.removed", { name: member.display_name }));
        await reload();
      } catch (error) {
        remove.disabled = false;
        status.replaceChildren(alertBox(errorMessage(error)));
      }
    });
    actions.push(h("div", { class: "role-change" }, select, apply), toggle, remove);
  }
  return h(
    "li",
    { class: ["list-item", "member", member.status === "suspended" ? "is-suspended" : null], dataset: { userId: member.user_id } },
    h("span", { class: "avatar avatar-initials", "aria-hidden": "true" }, initials(member.display_name)),
    h(
      "div",
      { class: "list-main" },
      h("p", { class: "list-title" }, member.display_name, self ? h("span", { class: "muted" }, ` (${t("coord.you")})`) : null),
      h("p", { class: "list-meta" }, meta),
    ),
    actions.length ? h("div", { class: "list-actions" }, actions) : null,
  );
}

export async function render({ view, params, isCurrent }) {
  const gid = params[0];
  const group = groupById(gid);
  if (!group || group.role !== "coordinator") {
    view.append(
      pageHeader(t("coord.title"), null),
      section(t("coord.title"), emptyState(t("coord.notCoordinator"), null, "team")),
    );
    return { title: t("coord.title") };
  }

  const membersList = h("ul", { class: "list", id: "member-list" });
  const invitationsList = h("ul", { class: "list", id: "invitation-list" });
  const memberStatus = h("div", { "aria-live": "assertive" });
  const membersHeading = h("h2", { class: "card-title", id: "members-title", tabindex: "-1" });

  async function reload() {
    const [members, invitations] = await Promise.all([
      allPages(`/api/v1/groups/${gid}/members`),
      allPages(`/api/v1/groups/${gid}/invitations`, { status: "pending" }),
    ]);
    if (!isCurrent()) return;
    membersHeading.textContent = `${t("coord.members")} · ${tn("inbox.members", members.length)}`;
    membersList.replaceChildren(...members.map((m) => memberRow(gid, m, reload, memberStatus)));
    invitationsList.replaceChildren(
      ...(invitations.length
        ? invitations.map((i) => invitationRow(gid, i, reload))
        : [h("li", { class: "list-empty" }, t("coord.invitations.none"))]),
    );
  }
  await reload();

  view.append(
    pageHeader(t("coord.title"), group.name || t("inbox.unnamedGroup")),
    groupTabs(groupsWithRole("coordinator"), gid, (id) => `#/coordination/${id}`),
    h(
      "div",
      { class: "grid grid-coordination" },
      h(
        "section",
        { class: "card card-wide", "aria-labelledby": "members-title" },
        membersHeading,
        memberStatus,
        membersList,
      ),
      section(t("coord.invite"), h("p", { class: "muted" }, t("coord.invite.help")), inviteForm(gid, reload)),
      section(t("coord.invitations"), invitationsList),
    ),
  );
  return { title: `${t("coord.title")} · ${group.name}` };
}
