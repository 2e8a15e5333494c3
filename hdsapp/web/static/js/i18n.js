// French first, English second: two dictionaries with the same keys, the <html lang> follows.
// The choice is a preference, not health data: it is kept in localStorage (cleared at logout,
// after which the app speaks French again until the user chooses).

import fr from "./i18n/fr.js";

// French is always loaded; English only when chosen (a smaller first load).
export const LANGUAGES = { fr, en: null };
const LOADERS = { en: () => import("./i18n/en.js") };
const STORAGE_KEY = "hds.lang";
const listeners = new Set();

async function load(code) {
  if (!LANGUAGES[code] && LOADERS[code]) LANGUAGES[code] = (await LOADERS[code]()).default;
  return LANGUAGES[code];
}

function stored() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

let current = "fr";

export function lang() {
  return current;
}

/** t("signin.title"), or with values t("inbox.welcome", {name}); English falls back to French, then the key. */
export function t(key, vars) {
  const text = (LANGUAGES[current] || fr)[key] ?? fr[key] ?? key;
  if (!vars) return text;
  return text.replace(/\{(\w+)\}/g, (match, name) => (name in vars ? String(vars[name]) : match));
}

/** Translate the static markup of index.html (data-i18n, data-i18n-aria-label). */
export function has(key) {
  return key in (LANGUAGES[current] || fr) || key in fr;
}

/** tn("inbox.members", 3): the ".one" or ".other" form for n, with {n} filled in. */
export function tn(key, n, vars = {}) {
  const form = new Intl.PluralRules(current).select(n) === "one" ? "one" : "other";
  return t(`${key}.${form}`, { n: formatNumber(n), ...vars });
}

export function translateStatic(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-aria-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel));
  }
}

export async function setLang(next, { persist = true } = {}) {
  if (!(next in LANGUAGES) || !(await load(next))) return;
  current = next;
  document.documentElement.lang = next;
  if (persist) {
    try {
      localStorage.setItem(STORAGE_KEY, next);
    } catch {
      // Storage refused (private mode): the choice lasts for this page.
    }
  }
  translateStatic();
  for (const listener of listeners) listener(next);
}

export function onLangChange(listener) {
  listeners.add(listener);
}

export function formatDateTime(value) {
  if (!value) return "";
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return new Intl.DateTimeFormat(current === "fr" ? "fr-FR" : "en-GB", {
    dateStyle: "medium",
    timeStyle: "short",
  }).format(date);
}

export function formatDate(value) {
  if (!value) return "";
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return new Intl.DateTimeFormat(current === "fr" ? "fr-FR" : "en-GB", {
    dateStyle: "medium",
  }).format(date);
}

export function formatNumber(value) {
  return new Intl.NumberFormat(current === "fr" ? "fr-FR" : "en-GB").format(value);
}

/** Resolves once the stored language (if any) is loaded and current. */
export const ready = (async () => {
  const wanted = stored();
  if (wanted && wanted in LANGUAGES && (await load(wanted).catch(() => null))) current = wanted;
  document.documentElement.lang = current;
})();
