"""The shell in a real Chromium: service worker, manifest, CSP, language, accessibility."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from audit.checkpoint import Checkpoint, sign_checkpoint
from audit.note import Signer
from hdsapp.web.shell import SERVICE_WORKER_TEMPLATE, build_shell, current_shell
from tests.web.a11y import assert_accessible
from tests.web.conftest import Guard, Shoot

pytestmark = pytest.mark.browser

CACHES_JS = """
async () => {
  const out = {};
  for (const name of await caches.keys()) {
    const cache = await caches.open(name);
    out[name] = (await cache.keys()).map((r) => new URL(r.url).pathname + new URL(r.url).search);
  }
  return out;
}
"""


def wait_for_worker(page: Page) -> None:
    """Until the service worker is active and controls the page."""
    # No wait_for_function: its string predicates are eval'd in the page, which the CSP refuses.
    page.evaluate(
        """async () => {
          const controlled = (async () => {
            await navigator.serviceWorker.ready;
            if (navigator.serviceWorker.controller) return;
            const sw = navigator.serviceWorker;
            await new Promise((resolve) =>
              sw.addEventListener("controllerchange", resolve, { once: true }));
          })();
          const late = new Promise((_, reject) =>
            setTimeout(() => reject(new Error("no service worker controls the page")), 10000));
          await Promise.race([controlled, late]);
        }"""
    )


def caches_of(page: Page) -> dict[str, list[str]]:
    result: dict[str, list[str]] = page.evaluate(CACHES_JS)
    return result


def open_signin(page: Page) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Connexion")


def test_signin_page_renders_in_french(page: Page, shoot: Shoot) -> None:
    open_signin(page)
    assert page.evaluate("document.documentElement.lang") == "fr"
    assert page.url.endswith("/#/signin")
    expect(page).to_have_title("Connexion · hdsapp")
    expect(page.get_by_label("Adresse e-mail")).to_be_focused()
    expect(page.get_by_label("Mot de passe", exact=True)).to_have_attribute(
        "autocomplete", "current-password"
    )
    otp = page.get_by_label("Code de vérification")
    expect(otp).to_have_attribute("autocomplete", "one-time-code")
    expect(otp).to_have_attribute("inputmode", "numeric")
    expect(page.get_by_role("button", name="Se connecter")).to_be_visible()
    # No federated provider is configured here: no Pro Santé Connect button.
    expect(page.get_by_text("Pro Santé Connect")).to_have_count(0)
    assert_accessible(page)
    shoot(page, "signin")


def test_service_worker_precaches_the_shell_and_nothing_else(page: Page, guard: Guard) -> None:
    open_signin(page)
    wait_for_worker(page)
    shell = current_shell()
    cached = caches_of(page)
    assert list(cached) == [shell.cache_name]
    assert sorted(cached[shell.cache_name]) == sorted(shell.files)
    scope = page.evaluate("navigator.serviceWorker.ready.then((r) => r.scope)")
    assert scope == f"{guard.origin}/"


def test_worker_serves_the_shell_and_leaves_api_to_the_network(
    page: Page, context: BrowserContext, guard: Guard
) -> None:
    open_signin(page)
    wait_for_worker(page)
    served: dict[str, bool] = {}
    page.on("response", lambda r: served.__setitem__(r.url, r.from_service_worker))
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("Connexion")
    assert served[f"{guard.origin}/static/app.css"] is True
    assert served[f"{guard.origin}/static/js/main.js"] is True
    assert served[f"{guard.origin}/"] is True
    assert served[f"{guard.origin}/api/v1/auth/session"] is False
    assert served[f"{guard.origin}/api/v1/auth/providers"] is False
    guard.expect_http_error("/fhir/nothing", 404)
    statuses = page.evaluate(
        """async () => {
          const out = [];
          for (const url of ["/api/openapi.json", "/fhir/nothing", "/healthz"]) {
            out.push((await fetch(url)).status);
          }
          return out;
        }"""
    )
    assert statuses == [200, 404, 200]
    assert served[f"{guard.origin}/api/openapi.json"] is False
    # Still only the shell in the cache: no /api, /fhir or other answer was stored.
    shell = current_shell()
    assert caches_of(page) == {shell.cache_name: caches_of(page)[shell.cache_name]}
    assert sorted(caches_of(page)[shell.cache_name]) == sorted(shell.files)


def test_shell_opens_offline(page: Page, context: BrowserContext, guard: Guard) -> None:
    open_signin(page)
    wait_for_worker(page)
    context.set_offline(True)
    guard.expect_console_error(r"net::ERR_INTERNET_DISCONNECTED")
    page.reload()
    # The shell comes from the cache; the API cannot be reached, and the app says so.
    expect(page.get_by_role("heading", level=1)).to_have_text("Pas de connexion")
    expect(page.get_by_role("button", name="Réessayer")).to_be_visible()
    context.set_offline(False)
    page.get_by_role("button", name="Réessayer").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Connexion")


def test_the_app_is_installable(page: Page, context: BrowserContext) -> None:
    open_signin(page)
    wait_for_worker(page)
    cdp = context.new_cdp_session(page)
    manifest: dict[str, Any] = cdp.send("Page.getAppManifest")
    assert manifest["url"].endswith("/manifest.webmanifest")
    assert manifest.get("errors", []) == []
    installability: dict[str, Any] = cdp.send("Page.getInstallabilityErrors")
    # Every Playwright context is an incognito profile, which alone blocks installing.
    errors = [e["errorId"] for e in installability["installabilityErrors"]]
    assert errors == ["in-incognito"]


def test_csp_violations_are_caught_by_the_harness(page: Page, guard: Guard) -> None:
    """The guard is not blind: an inline script is refused and reported."""
    open_signin(page)
    page.evaluate(
        """() => {
          const s = document.createElement("script");
          s.textContent = "window.injected = 1";
          document.body.append(s);
        }"""
    )
    page.wait_for_timeout(100)
    assert page.evaluate("window.injected") is None
    caught = [e for e in guard.console_errors if "CSP violation" in e or "Content Security" in e]
    assert caught
    guard.console_errors.clear()


def test_language_switch_on_signin(page: Page, shoot: Shoot) -> None:
    open_signin(page)
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    assert page.evaluate("document.documentElement.lang") == "en"
    expect(page.get_by_label("Email address")).to_be_visible()
    expect(page.get_by_role("navigation", include_hidden=True)).to_have_attribute(
        "aria-label", "Main navigation"
    )
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    shoot(page, "signin-en")
    page.get_by_role("button", name="Français").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Connexion")
    assert page.evaluate("document.documentElement.lang") == "fr"


def test_dictionaries_have_the_same_keys(page: Page) -> None:
    open_signin(page)
    difference = page.evaluate(
        """async () => {
          const fr = (await import("/static/js/i18n/fr.js")).default;
          const en = (await import("/static/js/i18n/en.js")).default;
          const a = Object.keys(fr), b = Object.keys(en);
          return {
            onlyFr: a.filter((k) => !(k in en)),
            onlyEn: b.filter((k) => !(k in fr)),
            empty: [...a.filter((k) => !fr[k]), ...b.filter((k) => !en[k])],
          };
        }"""
    )
    assert difference == {"onlyFr": [], "onlyEn": [], "empty": []}


def test_signin_form_validates_accessibly(page: Page) -> None:
    open_signin(page)
    page.keyboard.press("Enter")  # submits the empty form from the focused email field
    email = page.get_by_label("Adresse e-mail")
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(email).to_be_focused()
    expect(page.get_by_text("Saisissez une adresse e-mail valide.")).to_be_visible()
    described = email.get_attribute("aria-describedby") or ""
    assert page.locator(f"#{described.split()[-1]}").inner_text() == (
        "Saisissez une adresse e-mail valide."
    )
    email.fill("a@example.org")
    page.get_by_label("Mot de passe", exact=True).fill("x")
    page.get_by_label("Code de vérification").fill("12")
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_text("Le code comporte 6 chiffres.")).to_be_visible()
    expect(page.get_by_label("Code de vérification")).to_be_focused()
    assert_accessible(page)


def test_keyboard_reaches_everything_in_order(page: Page) -> None:
    open_signin(page)
    # The email field has the focus; the skip link is the one thing before it.
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.id") == "skip-link"
    expect(page.locator("#skip-link")).to_be_in_viewport()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.tagName") == "H1"
    order = []
    for _ in range(6):
        page.keyboard.press("Tab")
        order.append(
            page.evaluate(
                "document.activeElement.getAttribute('name') || "
                "document.activeElement.getAttribute('aria-label') || "
                "document.activeElement.textContent.trim()"
            )
        )
    assert order == [
        "email",
        "password",
        "Afficher le mot de passe",
        "otp",
        "Se connecter",
        "English",
    ]


def test_password_can_be_revealed(page: Page) -> None:
    open_signin(page)
    password = page.get_by_label("Mot de passe", exact=True)
    password.fill("secret")
    toggle = page.get_by_role("button", name="Afficher le mot de passe")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    toggle.click()
    expect(password).to_have_attribute("type", "text")
    expect(toggle).to_have_attribute("aria-pressed", "true")
    toggle.click()
    expect(password).to_have_attribute("type", "password")


def test_first_load_is_small(page: Page, guard: Guard) -> None:
    sizes: dict[str, int] = {}

    def record(response: Any) -> None:
        body = response.body() if response.status == 200 else b""
        sizes[response.url] = len(body)

    page.on("response", record)
    open_signin(page)
    page.wait_for_load_state("networkidle")
    code = {url: size for url, size in sizes.items() if url.endswith((".js", ".css", "/"))}
    # What the sign-in page needs, uncompressed: HTML, CSS and JS (the other screens and the
    # English dictionary load when first used).
    assert sum(code.values()) < 100_000, code
    assert not [url for url in code if "/screens/" in url and not url.endswith("signin.js")]
    assert not [url for url in code if url.endswith("/en.js")]


def _checkpoint_and_key(*, plus_in_key: bool) -> tuple[str, str]:
    """A checkpoint signed by a fresh key; with ``plus_in_key``, one whose base64 holds '+'."""
    for _ in range(500):
        signer = Signer.generate("example.org/hdsapp-audit")
        vkey = str(signer.verifier)
        if ("+" in vkey.split("+", 2)[2]) == plus_in_key:
            checkpoint = Checkpoint("example.org/hdsapp-audit", 7, bytes(range(32)))
            return sign_checkpoint(checkpoint, [signer]), vkey
    raise AssertionError("no such key")


VERIFY_JS = """
async ([note, vkey]) => {
  const { verifyCheckpoint } = await import("/static/js/integrity.js");
  const result = await verifyCheckpoint(note, vkey);
  return [result.state, result.size];
}
"""


@pytest.mark.parametrize("plus_in_key", [False, True])
def test_checkpoint_signature_is_verified_in_the_page(page: Page, plus_in_key: bool) -> None:
    open_signin(page)
    note, vkey = _checkpoint_and_key(plus_in_key=plus_in_key)
    assert page.evaluate(VERIFY_JS, [note, vkey]) == ["verified", 7]
    tampered = note.replace("\n7\n", "\n8\n", 1)
    assert page.evaluate(VERIFY_JS, [tampered, vkey]) == ["invalid", 8]
    _, other_key = _checkpoint_and_key(plus_in_key=False)
    assert page.evaluate(VERIFY_JS, [note, other_key])[0] == "invalid"


def test_a_new_shell_replaces_the_old_one(
    page: Page, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A deployment changes a shell file: the browser installs the new worker, which precaches
    the new shell and deletes the old cache; the page offers to reload."""
    open_signin(page)
    wait_for_worker(page)
    old = current_shell()
    assert list(caches_of(page)) == [old.cache_name]

    template = tmp_path / "sw.js"
    template.write_text(SERVICE_WORKER_TEMPLATE.read_text() + "\n// the next release\n")
    new = build_shell(template_file=template)
    assert new.version != old.version
    monkeypatch.setattr("hdsapp.web.endpoints.current_shell", lambda: new)

    page.evaluate("navigator.serviceWorker.ready.then((r) => r.update())")
    banner = page.locator("#update-banner")
    expect(banner).to_contain_text("Une nouvelle version de l'application est prête.")
    # The page learns of the new worker as it activates; the old cache goes right after.
    for _ in range(50):
        if list(caches_of(page)) == [new.cache_name]:
            break
        page.wait_for_timeout(100)
    assert list(caches_of(page)) == [new.cache_name]
    assert sorted(caches_of(page)[new.cache_name]) == sorted(new.files)
    banner.get_by_role("button", name="Recharger").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Connexion")
    expect(banner).to_be_hidden()
