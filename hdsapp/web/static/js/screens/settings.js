// Settings: account, second factor (recovery codes), session, personal access tokens, language.

import { api } from "../api.js";
import { h } from "../dom.js";
import { formatDateTime, lang, setLang, t } from "../i18n.js";
import { logout, session } from "../session.js";
import { Cancelled, withStepUp } from "../stepup.js";
import {
  alertBox,
  badge,
  errorMessage,
  field,
  icon,
  pageHeader,
  professionLabel,
  section,
  toast,
} from "../ui.js";

const SCOPES = ["read", "write", "audit"];
const EXPIRIES = ["1h", "1d", "7d", "30d", "90d"];

function facts(rows) {
  return h(
    "dl",
    { class: "facts" },
    rows
      .filter(([, value]) => value !== undefined && value !== null && value !== "")
      .map(([term, value]) => h("div", { class: "fact" }, h("dt", null, term), h("dd", null, value))),
  );
}

function accountSection(me) {
  return section(
    t("settings.account"),
    facts([
      [t("settings.name"), me.display_name],
      [t("settings.email"), me.email],
      [t("settings.profession"), me.profession && professionLabel(me.profession.code)],
      [t("settings.rpps"), me.rpps],
      [t("settings.idnps"), me.idnps],
    ]),
  );
}

function copyButton(text, label) {
  return h(
    "button",
    {
      type: "button",
      class: "btn btn-small",
      on: {
        click: async () => {
          try {
            await navigator.clipboard.writeText(text);
            toast(t("tokens.copied"));
          } catch {
            toast(t("tokens.copy.failed"));
          }
        },
      },
    },
    icon("copy"),
    label || t("tokens.copy"),
  );
}

function secondFactorSection(me, info) {
  const federated = info && info.method === "oidc";
  const active = me.authentication && me.authentication.second_factor;
  const output = h("div", { "aria-live": "polite" });
  const regenerate = h(
    "button",
    {
      type: "button",
      class: "btn",
      id: "recovery-codes",
      on: {
        click: async () => {
          output.replaceChildren();
          regenerate.disabled = true;
          try {
            const answer = await withStepUp(() => api.post("/api/v1/me/recovery-codes"));
            const codes = answer.codes || [];
            output.replaceChildren(
              h(
                "div",
                { class: "alert alert-success", role: "status" },
                h("p", null, h("strong", null, t("mfa.codes.created"))),
                h("p", null, t("mfa.codes.once")),
                h("ul", { class: "codes" }, codes.map((code) => h("li", null, h("code", null, code)))),
                h("div", null, copyButton(codes.join("\n"))),
              ),
            );
          } catch (error) {
            if (!(error instanceof Cancelled)) output.replaceChildren(alertBox(errorMessage(error)));
          } finally {
            regenerate.disabled = false;
          }
        },
      },
    },
    t("mfa.codes.regenerate"),
  );
  return section(
    t("settings.mfa"),
    h(
      "p",
      { class: "fact-line" },
      active ? badge(t("settings.mfa.active"), "success") : badge(t("settings.mfa.inactive"), "danger"),
      h(
        "span",
        null,
        federated
          ? t("settings.mfa.federated", { provider: info.provider || "Pro Santé Connect" })
          : t("settings.mfa.totp"),
      ),
    ),
    h("p", { class: "muted" }, t("settings.mfa.help")),
    federated ? null : h("p", { class: "muted" }, t("mfa.codes.help")),
    federated ? null : regenerate,
    output,
  );
}

function sessionSection(info) {
  return section(
    t("settings.session"),
    facts([
      [t("settings.session.since"), formatDateTime(info && info.authenticated_at)],
      [t("settings.session.idle"), formatDateTime(info && info.idle_expires_at)],
      [t("settings.session.expires"), formatDateTime(info && info.expires_at)],
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

function tokensSection() {
  const list = h("ul", { class: "list", id: "token-list", "aria-live": "polite" });
  const created = h("div", { class: "token-created" });
  const status = h("div", { "aria-live": "assertive" });
  let tokens = [];
  const heading = h("h3", { class: "subhead", tabindex: "-1" }, t("tokens.active"));

  async function reload() {
    const answer = await api.get("/api/v1/me/tokens");
    tokens = (answer.items || []).filter((token) => token.state === "active");
    renderList();
  }

  function renderList() {
    list.replaceChildren();
    if (!tokens.length) {
      list.append(h("li", { class: "list-empty" }, t("tokens.none")));
      return;
    }
    for (const token of tokens) {
      const revoke = h(
        "button",
        {
          type: "button",
          class: "btn btn-small btn-danger-quiet",
          "aria-label": t("tokens.revoke.named", { name: token.name }),
        },
        t("tokens.revoke"),
      );
      revoke.addEventListener("click", async () => {
        revoke.disabled = true;
        status.replaceChildren();
        try {
          await api.delete(`/api/v1/me/tokens/${encodeURIComponent(token.id)}`);
          created.replaceChildren();
          await reload();
          toast(t("tokens.revoked"));
          heading.focus();
        } catch (error) {
          revoke.disabled = false;
          status.replaceChildren(alertBox(errorMessage(error)));
        }
      });
      list.append(
        h(
          "li",
          { class: "list-item", dataset: { tokenId: token.id } },
          h("span", { class: "avatar", "aria-hidden": "true" }, icon("key")),
          h(
            "div",
            { class: "list-main" },
            h("p", { class: "list-title" }, token.name),
            h(
              "p",
              { class: "list-meta" },
              h("code", null, `${token.prefix}…`),
              (token.scopes || []).map((scope) => badge(t(`tokens.scope.${scope}`))),
              h("span", null, t("tokens.expires", { when: formatDateTime(token.expires_at) })),
              token.last_used_at
                ? h("span", null, t("tokens.used", { when: formatDateTime(token.last_used_at) }))
                : h("span", null, t("tokens.unused")),
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
  const scopes = h(
    "fieldset",
    { class: "field choices" },
    h("legend", { class: "field-label" }, t("tokens.scopes")),
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
      EXPIRIES.map((value) =>
        h("option", { value, selected: value === "30d" }, t(`tokens.expiry.${value}`)),
      ),
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
      const token = await withStepUp(() =>
        api.post("/api/v1/me/tokens", { name: label, scopes: chosen, expires_in: expiry.input.value }),
      );
      form.reset();
      created.replaceChildren(
        h(
          "div",
          { class: "alert alert-success", role: "status" },
          h("p", null, h("strong", null, t("tokens.created", { name: token.name }))),
          h("p", null, t("tokens.once")),
          h(
            "div",
            { class: "secret-row" },
            h("code", { class: "secret", id: "token-secret" }, token.token),
            copyButton(token.token),
          ),
        ),
      );
      await reload();
    } catch (error) {
      if (!(error instanceof Cancelled)) status.replaceChildren(alertBox(errorMessage(error)));
    } finally {
      submit.disabled = false;
    }
  });

  return {
    element: section(
      t("tokens.title"),
      h("p", { class: "muted" }, t("tokens.help")),
      form,
      status,
      created,
      heading,
      list,
    ),
    reload,
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
  const tokens = tokensSection();
  await tokens.reload();
  const wide = tokens.element;
  wide.classList.add("card-wide");
  view.append(
    pageHeader(t("settings.title"), null),
    h(
      "div",
      { class: "grid" },
      accountSection(me),
      secondFactorSection(me, session.info),
      sessionSection(session.info),
      languageSection(),
      wide,
    ),
  );
  return { title: t("settings.title") };
}
