// Boot: translate the page, register the service worker, find out who is signed in, route.

import { onUnauthenticated } from "./api.js";
import { $, clear, h } from "./dom.js";
import { lang, onLangChange, ready as languageReady, t, translateStatic } from "./i18n.js";
import { displayName, groupsWithRole, logout, refreshMe, session } from "./session.js";
import { icon, toast } from "./ui.js";
import * as signin from "./screens/signin.js";

// Each route: a pattern on the fragment, the screen, whether it needs a session, the nav item.
// The sign-in screen comes with the shell; the others load when first shown (a smaller first
// load; the service worker has them all precached for the next time).
const routes = [
  { path: /^\/signin$/, screen: async () => signin, public: true },
  { path: /^\/inbox(?:\/([\w-]+))?$/, screen: () => import("./screens/inbox.js"), nav: "inbox" },
  { path: /^\/settings$/, screen: () => import("./screens/settings.js"), nav: "settings" },
  {
    path: /^\/coordination\/([\w-]+)$/,
    screen: () => import("./screens/coordinator.js"),
    nav: "coordination",
  },
  { path: /^\/patients\/([\w-]+)$/, screen: () => import("./screens/patients.js"), nav: "patients" },
  { path: /^\/audit\/([\w-]+)$/, screen: () => import("./screens/auditor.js"), nav: "audit" },
  { path: /^\/invitations\/([^/]+)$/, screen: () => import("./screens/invitation.js"), nav: "inbox" },
  { path: /^\/threads\/([\w-]+)$/, screen: () => import("./screens/thread.js"), nav: "inbox" },
  {
    path: /^\/groups\/([\w-]+)\/threads\/new$/,
    screen: () => import("./screens/newthread.js"),
    nav: "inbox",
  },
];

const main = $("#main");
let renderToken = 0;
let wantedAfterSignIn = null;
let shown = null;
let shownLang = null;

function navigate(path, { replace = false } = {}) {
  const hash = `#${path}`;
  if (location.hash === hash) {
    route();
  } else if (replace) {
    history.replaceState(null, "", hash);
    route();
  } else {
    location.hash = hash;
  }
}

function currentPath() {
  const hash = location.hash.replace(/^#/, "");
  return hash.startsWith("/") ? hash : "";
}

function match(path) {
  for (const candidate of routes) {
    const found = candidate.path.exec(path);
    if (found) return { route: candidate, params: found.slice(1) };
  }
  return null;
}

function navItems() {
  const items = [{ id: "inbox", href: "#/inbox", label: t("nav.inbox"), icon: "inbox" }];
  const first = (role) => groupsWithRole(role)[0];
  if (first("clinician")) {
    items.push({
      id: "patients",
      href: `#/patients/${first("clinician").id}`,
      label: t("nav.patients"),
      icon: "patient",
    });
  }
  if (first("coordinator")) {
    items.push({
      id: "coordination",
      href: `#/coordination/${first("coordinator").id}`,
      label: t("nav.coordination"),
      icon: "team",
    });
  }
  if (first("auditor")) {
    items.push({
      id: "audit",
      href: `#/audit/${first("auditor").id}`,
      label: t("nav.audit"),
      icon: "shield",
    });
  }
  items.push({ id: "settings", href: "#/settings", label: t("nav.settings"), icon: "gear" });
  return items;
}

// Signed in with a group that has case threads: live updates, and the outbox delivers what
// waits (loaded on demand, like the screens).
function startThreads() {
  if (!groupsWithRole("clinician").length && !groupsWithRole("coordinator").length) return;
  import("./live.js").then((live) => live.start());
  import("./outbox.js").then((outbox) => outbox.start());
}

function renderChrome(active) {
  const signedIn = Boolean(session.me);
  $("#topbar").hidden = !signedIn;
  $("#appnav").hidden = !signedIn;
  document.body.classList.toggle("signed-in", signedIn);
  if (!signedIn) return;
  startThreads();
  const user = clear($("#topbar-user"));
  user.append(
    h("span", { class: "topbar-name", id: "topbar-name" }, displayName()),
    h(
      "button",
      { type: "button", class: "btn btn-quiet", id: "logout-button", on: { click: logout } },
      icon("logout"),
      h("span", { class: "btn-label" }, t("nav.logout")),
    ),
  );
  const list = clear($("#appnav-list"));
  for (const item of navItems()) {
    list.append(
      h(
        "li",
        null,
        h(
          "a",
          {
            href: item.href,
            class: "appnav-link",
            "aria-current": item.id === active ? "page" : null,
            id: `nav-${item.id}`,
          },
          icon(item.icon),
          h("span", null, item.label),
        ),
      ),
    );
  }
}

async function route() {
  const token = ++renderToken;
  let path = currentPath();
  if (!session.me) {
    const found = match(path);
    if (!found || !found.route.public) {
      if (path && path !== "/signin") wantedAfterSignIn = path;
      path = "/signin";
      history.replaceState(null, "", "#/signin");
    }
  } else if (!path || path === "/signin") {
    path = wantedAfterSignIn || "/inbox";
    wantedAfterSignIn = null;
    history.replaceState(null, "", `#${path}`);
  }
  const found = match(path) || match("/inbox");
  // Already on the sign-in form (a link was followed while signed out): keep what is typed.
  if (found.route.public && shown === found.route && shownLang === lang()) return;
  shown = found.route;
  shownLang = lang();
  renderChrome(found.route.nav);
  const view = h("div", { class: "view" });
  main.setAttribute("aria-busy", "true");
  let result;
  try {
    const screen = await found.route.screen();
    if (token !== renderToken) return;
    result = await screen.render({
      view,
      params: found.params,
      navigate,
      toast,
      afterSignIn: () => {
        const next = wantedAfterSignIn || "/inbox";
        wantedAfterSignIn = null;
        navigate(next, { replace: true });
      },
      isCurrent: () => token === renderToken,
    });
  } catch (error) {
    if (token !== renderToken) return;
    clear(view).append(errorPanel(error));
  }
  if (token !== renderToken) return;
  clear(main).append(view);
  main.removeAttribute("aria-busy");
  const title = (result && result.title) || t("app.name");
  document.title = `${title} · hdsapp`;
  const focusTarget = (result && result.focus) || view.querySelector("h1");
  if (focusTarget) {
    if (!focusTarget.hasAttribute("tabindex") && focusTarget.tagName === "H1") {
      focusTarget.setAttribute("tabindex", "-1");
    }
    focusTarget.focus({ preventScroll: false });
  }
}

function errorPanel(error) {
  const offline = error instanceof TypeError;
  return h(
    "div",
    { class: "panel panel-error", role: "alert" },
    h("h1", null, offline ? t("error.offline.title") : t("error.generic.title")),
    h("p", null, offline ? t("error.offline.body") : t("error.generic.body")),
    h(
      "button",
      { type: "button", class: "btn btn-primary", on: { click: () => boot() } },
      t("action.retry"),
    ),
  );
}

function registerServiceWorker() {
  if (!("serviceWorker" in navigator)) return;
  // The first worker taking control is no news; a later one is a new version of the shell.
  let controlled = Boolean(navigator.serviceWorker.controller);
  navigator.serviceWorker.addEventListener("controllerchange", () => {
    const replaced = controlled;
    controlled = true;
    if (!replaced) return;
    // A new shell took over: offer to load it (never reload under the user's feet).
    const banner = clear($("#update-banner"));
    banner.append(
      h("span", null, t("shell.update")),
      h(
        "button",
        { type: "button", class: "btn btn-small", on: { click: () => location.reload() } },
        t("action.reload"),
      ),
    );
    banner.hidden = false;
  });
  navigator.serviceWorker
    .register("/sw.js", { scope: "/" })
    .then(() => navigator.serviceWorker.ready)
    .then((registration) => registration.active && registration.active.postMessage("ensure-shell"))
    .catch(() => {
      // No worker (private mode, unsupported): the app works online all the same.
    });
}

async function boot() {
  main.setAttribute("aria-busy", "true");
  try {
    await refreshMe();
  } catch (error) {
    clear(main).append(errorPanel(error));
    main.removeAttribute("aria-busy");
    return;
  }
  await route();
}

function wireSkipLink() {
  $("#skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    const heading = main.querySelector("h1");
    (heading || main).focus();
  });
}

onUnauthenticated(() => {
  if (!session.me) return;
  session.me = null;
  import("./live.js").then((live) => live.stop());
  toast(t("session.expired"));
  navigate("/signin", { replace: true });
});

onLangChange(() => route());
window.addEventListener("hashchange", () => route());
// A link to the address already shown changes no fragment: render it all the same.
document.addEventListener("click", (event) => {
  const link = event.target instanceof Element && event.target.closest("a[href^='#/']");
  if (link && link.getAttribute("href") === location.hash && !event.defaultPrevented) {
    event.preventDefault();
    route();
  }
});

wireSkipLink();
registerServiceWorker();
languageReady.then(() => {
  translateStatic();
  boot();
});
