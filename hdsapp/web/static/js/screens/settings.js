// Settings: account, second factor, session, personal access tokens, language.

import { api } from "../api.js";
import { h, uid } from "../dom.js";
import { formatDateTime, lang, setLang, t } from "../i18n.js";
import { logout, session } from "../session.js";
import { alertBox, badge, errorMessage, field, icon, pageHeader, section, toast } from "../ui.js";

const SCOPES = ["read", "write", "audit"];
const EXPIRIES = ["1h", "1d", "7d", "30d", "90d"];

function userOf(me) {
  return (me && (me.user || me)) || {};
}

function definition(rows) {
  return h(
    "dl",
    { class: "facts" },
    rows
      .filter(([, value]) => value !== undefined && value !== null && value !== "")
      .map(([term, value]) => h("div", { class: "fact" }, h("dt", null, term), h("dd", null, value))),
  );
}

function accountSection(me) {
  const user = userOf(me);
  return section(
    t("settings.account"),
    definition([
      [t("settings.name"), user.display_name || user.name],
      [t("settings.email"), user.email],
      [t("settings.rpps"), user.rpps],
      [t("settings.profession"), user.profession_label || user.profession],
    ]),
  );
}

function secondFactorSection(me) {
  const user = userOf(me);
  const federated = user.auth_method === "oidc" || me.auth_method === "oidc";
  return section(
    t("settings.mfa"),
    h(
      "p",
      { class: "fact-line" },
      badge(t("settings.mfa.active"), "success"),
      " ",
      federated ? t("settings.mfa.federated") : t("settings.mfa.totp"),
    ),
    h("p", { class: "muted" }, t("settings.mfa.help")),
  );
}

function sessionSection(me) {
  const current = me.session || {};
  return section(
    t("settings.session"),
    definition([
      [t("settings.session.since"), current.created_at ? formatDateTime(current.created_at) : ""],
      [t("settings.session.expires"), current.expires_at ? formatDateTime(current.expires_at) : ""],
    ]),
    h("p", { class: "muted" }, t("settings.session.help")),
    h(
      "button",
      { type: "button", class: "btn btn-danger", id: "settings-logout", on: { click: logout } },
      icon("logout"),
      t("nav.logout"),
    ),
  );
}

function tokensSection({ toastFn }) {
  const list = h("ul", { class: "list", id: "token-list" });
  const created = h("div", { class: "token-created", "aria-live": "polite" });
  const status = h("div", { "aria-live": "assertive" });
  const known = new Map();

  function renderList() {
    list.replaceChildren();
    if (!known.size) {
      list.append(h("li", { class: "list-empty" }, t("tokens.none")));
      return;
    }
    for (const token of known.values()) {
      const revoke = h(
        "button",
        {
          type: "button",
          class: "btn btn-small btn-danger-quiet",
          "aria-label": t("tokens.revoke.named", { name: token.name || token.id }),
          on: {
            click: async () => {
              revoke.disabled = true;
              try {
                await api.delete(`/api/v1/me/tokens/${encodeURIComponent(token.id)}`);
                known.delete(token.id);
                created.replaceChildren();
                renderList();
                toastFn(t("tokens.revoked"));
              } catch (error) {
                revoke.disabled = false;
                status.replaceChildren(alertBox(errorMessage(error)));
              }
            },
          },
        },
        t("tokens.revoke"),
      );
      list.append(
        h(
          "li",
          { class: "list-item", dataset: { tokenId: token.id } },
          h("span", { class: "avatar", "aria-hidden": "true" }, icon("key")),
          h(
            "div",
            { class: "list-main" },
            h("p", { class: "list-title" }, token.name || token.id),
            h(
              "p",
              { class: "list-meta" },
              (token.scopes || []).map((scope) => badge(t(`tokens.scope.${scope}`))),
              token.expires_at
                ? h("span", null, t("tokens.expires", { when: formatDateTime(token.expires_at) }))
                : null,
            ),
          ),
          h("div", { class: "list-actions" }, revoke),
        ),
      );
    }
  }

  const name = field({
    label: t("tokens.name"),
    hint: t("tokens.name.hint"),
    input: h("input", { type: "text", name: "name", maxlength: "100", autocomplete: "off" }),
  });
  const scopeLegend = uid("legend");
  const scopes = h(
    "fieldset",
    { class: "field choices", "aria-describedby": null },
    h("legend", { class: "field-label", id: scopeLegend }, t("tokens.scopes")),
    SCOPES.map((scope) =>
      h(
        "label",
        { class: "choice" },
        h("input", { type: "checkbox", name: "scope", value: scope, checked: scope === "read" }),
        h("span", null, t(`tokens.scope.${scope}`)),
      ),
    ),
  );
  const expiry = field({
    label: t("tokens.expiry"),
    input: h(
      "select",
      { name: "expires_in" },
      EXPIRIES.map((value) => h("option", { value, selected: value === "30d" }, t(`tokens.expiry.${value}`))),
    ),
  });
  const submit = h("button", { type: "submit", class: "btn btn-primary" }, t("tokens.create"));
  const form = h(
    "form",
    { class: "form form-inline", novalidate: true, id: "token-form" },
    name.root,
    scopes,
    expiry.root,
    h("div", { class: "form-actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.replaceChildren();
    const chosen = [...form.querySelectorAll("input[name=scope]:checked")].map((el) => el.value);
    const label = name.input.value.trim();
    name.setError(label ? "" : t("tokens.name.missing"));
    if (!label) {
      name.input.focus();
      return;
    }
    if (!chosen.length) {
      status.replaceChildren(alertBox(t("tokens.scopes.missing")));
      return;
    }
    submit.disabled = true;
    try {
      const token = await api.post("/api/v1/me/tokens", {
        name: label,
        scopes: chosen,
        expires_in: expiry.input.value,
      });
      known.set(token.id, token);
      renderList();
      form.reset();
      const secret = h("code", { class: "secret", id: "token-secret" }, token.token);
      const copy = h(
        "button",
        {
          type: "button",
          class: "btn btn-small",
          on: {
            click: async () => {
              try {
                await navigator.clipboard.writeText(token.token);
                toastFn(t("tokens.copied"));
              } catch {
                toastFn(t("tokens.copy.failed"));
              }
            },
          },
        },
        icon("copy"),
        t("tokens.copy"),
      );
      created.replaceChildren(
        h(
          "div",
          { class: "alert alert-success", role: "status" },
          h("p", null, h("strong", null, t("tokens.created"))),
          h("p", null, t("tokens.once")),
          h("div", { class: "secret-row" }, secret, copy),
        ),
      );
    } catch (error) {
      status.replaceChildren(alertBox(errorMessage(error)));
    } finally {
      submit.disabled = false;
    }
  });

  async function load() {
    try {
      const answer = await api.get("/api/v1/me/tokens");
      for (const token of answer.items || []) known.set(token.id, token);
    } catch {
      // Listing may not exist: show the tokens created here.
    }
    renderList();
  }

  return {
    element: section(
      t("tokens.title"),
      h("p", { class: "muted" }, t("tokens.help")),
      form,
      status,
      created,
      h("h3", { class: "subhead" }, t("tokens.active")),
      list,
    ),
    load,
  };
}

function languageSection() {
  return section(
    t("settings.language"),
    h(
      "fieldset",
      { class: "field choices" },
      h("legend", { class: "field-label" }, t("settings.language.choose")),
      [
        ["fr", "Français"],
        ["en", "English"],
      ].map(([code, label]) =>
        h(
          "label",
          { class: "choice" },
          h("input", {
            type: "radio",
            name: "language",
            value: code,
            checked: lang() === code,
            on: { change: () => setLang(code) },
          }),
          h("span", { lang: code }, label),
        ),
      ),
    ),
  );
}

export async function render({ view }) {
  const me = session.me;
  const tokens = tokensSection({ toastFn: toast });
  await tokens.load();
  view.append(
    pageHeader(t("settings.title"), null),
    h(
      "div",
      { class: "grid" },
      accountSection(me),
      secondFactorSection(me),
      sessionSection(me),
      languageSection(),
      tokens.element,
    ),
  );
  return { title: t("settings.title") };
}
