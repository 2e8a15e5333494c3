// Sign-in: email, password and the TOTP code; Pro Santé Connect when the server offers it.

import { ApiError } from "../api.js";
import { h } from "../dom.js";
import { lang, setLang, t } from "../i18n.js";
import { signIn } from "../session.js";
import { alertBox, field, icon } from "../ui.js";
import { loadProviders } from "../providers.js";

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const OTP = /^\d{6}$/;

function loginError(error) {
  if (error instanceof TypeError) return t("error.offline.body");
  if (error instanceof ApiError) {
    if (error.status === 401 || error.status === 400 || error.status === 422) {
      return t("signin.error.credentials");
    }
    if (error.status === 429) return t("signin.error.throttled");
    if (error.status === 403) return t("signin.error.forbidden");
    return t("error.status", { status: error.status });
  }
  return t("error.generic.body");
}

export async function render({ view, afterSignIn }) {
  const providers = await loadProviders();

  const email = field({
    label: t("signin.email"),
    input: h("input", {
      type: "email",
      name: "email",
      autocomplete: "username",
      autocapitalize: "none",
      spellcheck: "false",
      required: true,
    }),
  });
  const passwordInput = h("input", {
    type: "password",
    name: "password",
    autocomplete: "current-password",
    required: true,
  });
  const reveal = h(
    "button",
    {
      type: "button",
      class: "input-action",
      "aria-pressed": "false",
      "aria-label": t("signin.password.show"),
      on: {
        click: () => {
          const shown = passwordInput.type === "text";
          passwordInput.type = shown ? "password" : "text";
          reveal.setAttribute("aria-pressed", String(!shown));
        },
      },
    },
    icon("eye"),
  );
  const password = field({
    label: t("signin.password"),
    input: passwordInput,
    // The reveal button sits inside the input's frame.
    control: h("div", { class: "input-with-action" }, passwordInput, reveal),
  });
  const otp = field({
    label: t("signin.otp"),
    hint: t("signin.otp.hint"),
    input: h("input", {
      type: "text",
      name: "otp",
      inputmode: "numeric",
      autocomplete: "one-time-code",
      pattern: "[0-9]{6}",
      maxlength: "6",
      required: true,
      class: "input-otp",
    }),
  });
  const status = h("div", { class: "form-status", "aria-live": "assertive" });
  const submit = h("button", { type: "submit", class: "btn btn-primary btn-block" }, t("signin.submit"));

  const form = h(
    "form",
    { class: "form", novalidate: true },
    email.root,
    password.root,
    otp.root,
    status,
    submit,
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.replaceChildren();
    const values = {
      email: email.input.value.trim(),
      password: passwordInput.value,
      otp: otp.input.value.replace(/\s/g, ""),
    };
    const problems = [
      [email, EMAIL.test(values.email) ? "" : t("signin.email.invalid")],
      [password, values.password ? "" : t("signin.password.missing")],
      [otp, OTP.test(values.otp) ? "" : t("signin.otp.invalid")],
    ];
    for (const [f, message] of problems) f.setError(message);
    const firstBad = problems.find(([, message]) => message);
    if (firstBad) {
      firstBad[0].input.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = t("signin.submitting");
    form.setAttribute("aria-busy", "true");
    try {
      await signIn(values);
      afterSignIn();
    } catch (error) {
      status.replaceChildren(alertBox(loginError(error)));
      otp.input.value = "";
      submit.disabled = false;
      submit.textContent = t("signin.submit");
      form.removeAttribute("aria-busy");
      otp.input.focus();
    }
  });

  const federated = providers.map((provider) =>
    h(
      "a",
      {
        class: ["btn", "btn-block", provider.psc ? "btn-psc" : null],
        href: provider.loginUrl,
        id: `signin-provider-${provider.name}`,
      },
      provider.psc ? t("signin.psc") : t("signin.provider", { name: provider.label }),
    ),
  );

  const other = lang() === "fr" ? "en" : "fr";
  const switcher = h(
    "button",
    {
      type: "button",
      class: "btn btn-link",
      lang: other,
      id: "signin-language",
      on: { click: () => setLang(other) },
    },
    icon("globe"),
    t("signin.otherLanguage"),
  );

  view.append(
    h(
      "div",
      { class: "auth" },
      h(
        "section",
        { class: "auth-card", "aria-labelledby": "signin-title" },
        h(
          "div",
          { class: "auth-brand" },
          h("img", { src: "/static/icons/icon.svg", alt: "", width: "40", height: "40" }),
          h("span", null, "hdsapp"),
        ),
        h("h1", { id: "signin-title", tabindex: "-1" }, t("signin.title")),
        h("p", { class: "auth-lead" }, t("signin.lead")),
        federated.length
          ? h(
              "div",
              { class: "auth-federated" },
              federated,
              h("p", { class: "auth-or" }, h("span", null, t("signin.or"))),
            )
          : null,
        form,
        h("div", { class: "auth-foot" }, switcher),
      ),
      h(
        "p",
        { class: "auth-note" },
        icon("lock"),
        h("span", null, t("signin.note")),
      ),
    ),
  );
  return { title: t("signin.title"), focus: email.input };
}
