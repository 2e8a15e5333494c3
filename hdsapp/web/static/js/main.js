// Boot: translate the page, register the service worker, find out who is signed in, route.

import { onUnauthenticated } from "./api.js";
import { $, clear, h } from "./dom.js";
import { onLangChange, t, translateStatic } from "./i18n.js";
import { displayName, groupsWithRole, logout, refreshMe, session } from "./session.js";
import { icon, toast } from "./ui.js";
import * as signin from "./screens/signin.js";
import * as inbox from "./screens/inbox.js";
import * as settings from "./screens/settings.js";

// Each route: a pattern on the fragment, the screen, whether it needs a session, the nav item.
const routes = [
  { path: /^\/signin$/, screen: signin, public: true },
  { path: /^\/inbox(?:\/([\w-]+))?$/, screen: inbox, nav: "inbox" },
  { path: /^\/settings$/, screen: settings, nav: "settings" },
];

const main = $("#main");
let renderToken = 0;
let wantedAfterSignIn = null;

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
  const coordinated = groupsWithRole("coordinator");
  if (coordinated.length && routes.some((r) => r.nav === "coordination")) {
    items.push({
      id: "coordination",
      href: `#/coordination/${coordinated[0].id}`,
      label: t("nav.coordination"),
      icon: "team",
    });
  }
  const audited = groupsWithRole("auditor");
  if (audited.length && routes.some((r) => r.nav === "audit")) {
    items.push({
      id: "audit",
      href: `#/audit/${audited[0].id}`,
      label: t("nav.audit"),
      icon: "shield",
    });
  }
  items.push({ id: "settings", href: "#/settings", label: t("nav.settings"), icon: "gear" });
  return items;
}

function renderChrome(active) {
  const signedIn = Boolean(session.me);
  $("#topbar").hidden = !signedIn;
  $("#appnav").hidden = !signedIn;
  document.body.classList.toggle("signed-in", signedIn);
  if (!signedIn) return;
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
  renderChrome(found.route.nav);
  const view = h("div", { class: "view" });
  main.setAttribute("aria-busy", "true");
  let result;
  try {
    result = await found.route.screen.render({
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
  const hadController = Boolean(navigator.serviceWorker.controller);
  navigator.serviceWorker.addEventListener("controllerchange", () => {
    if (!hadController) return;
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
  toast(t("session.expired"));
  navigate("/signin", { replace: true });
});

onLangChange(() => route());
window.addEventListener("hashchange", () => route());

translateStatic();
wireSkipLink();
registerServiceWorker();
boot();
