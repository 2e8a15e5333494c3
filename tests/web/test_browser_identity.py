"""Sign-in, settings, tokens, language and logout in a real Chromium, against the real app."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from hdsapp.web.shell import current_shell
from tests.web.a11y import assert_accessible
from tests.web.conftest import Guard, LiveServer, Shoot
from tests.web.people import People, Person, sign_in
from tests.web.test_browser_shell import caches_of, wait_for_worker

pytestmark = pytest.mark.browser

SESSION_COOKIE = "__Host-hds_session"


@pytest.fixture
def clinician(people: People) -> Person:
    return people.add("claire.martin@example.org", "Dr Claire Martin")


def open_settings(page: Page) -> None:
    page.get_by_role("link", name="Réglages").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Réglages")


def test_clinician_signs_in_with_password_and_totp(
    page: Page, context: BrowserContext, clinician: Person, shoot: Shoot
) -> None:
    sign_in(page, clinician)
    expect(page.get_by_role("heading", level=1)).to_have_text("Boîte de réception")
    assert page.url.endswith("#/inbox")
    expect(page.locator("#topbar-name")).to_have_text("Dr Claire Martin")
    expect(page.get_by_role("link", name="Boîte de réception")).to_have_attribute(
        "aria-current", "page"
    )
    expect(page.get_by_text("Aucun groupe pour l'instant")).to_be_visible()
    # The session is an HttpOnly __Host- cookie; no token of any kind is visible to scripts.
    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies[SESSION_COOKIE]["httpOnly"] is True
    assert cookies[SESSION_COOKIE]["secure"] is True
    assert page.evaluate("document.cookie") == ""
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert_accessible(page)
    shoot(page, "inbox")
    # A reload keeps the session: the CSRF token comes back from /api/v1/auth/session.
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("Boîte de réception")


def test_wrong_code_is_refused_without_detail(page: Page, clinician: Person, guard: Guard) -> None:
    guard.expect_http_error("/api/v1/auth/login", 401)
    page.goto("/")
    page.get_by_label("Adresse e-mail").fill(clinician.email)
    page.get_by_label("Mot de passe", exact=True).fill(clinician.password)
    page.get_by_label("Code de vérification").fill("000000")
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Adresse e-mail, mot de passe ou code incorrect."
    )
    expect(page.get_by_label("Code de vérification")).to_be_focused()
    expect(page.get_by_label("Code de vérification")).to_have_value("")
    assert page.url.endswith("#/signin")


def test_a_deep_link_comes_back_after_sign_in(page: Page, clinician: Person) -> None:
    sign_in(page, clinician, start="/#/settings")
    expect(page.get_by_role("heading", level=1)).to_have_text("Réglages")


def test_settings_create_and_revoke_a_personal_access_token(
    page: Page, clinician: Person, live_server: LiveServer, shoot: Shoot
) -> None:
    sign_in(page, clinician)
    open_settings(page)
    account = page.locator("#main .facts").first
    expect(account).to_contain_text("Dr Claire Martin")
    expect(account).to_contain_text("Médecin")
    expect(page.locator("#token-list")).to_have_text("Aucun jeton actif.")

    page.get_by_label("Nom du jeton").fill("export mensuel")
    page.get_by_label("Écriture").check()
    page.get_by_label("Validité").select_option("7d")
    page.get_by_role("button", name="Créer le jeton").click()
    expect(page.get_by_text("Jeton « export mensuel » créé.")).to_be_visible()
    secret = page.locator("#token-secret").inner_text()
    row = page.locator("#token-list li").filter(has_text="export mensuel")
    expect(row).to_contain_text("Lecture")
    expect(row).to_contain_text("Écriture")
    expect(row).to_contain_text("jamais utilisé")
    assert_accessible(page)
    shoot(page, "settings")

    # The token works for scripts, and stops working once revoked.
    bearer = {"Authorization": f"Bearer {secret}"}
    me = httpx.get(f"{live_server.url}/api/v1/me", headers=bearer)
    assert me.status_code == 200
    assert me.json()["email"] == clinician.email

    page.get_by_role("button", name="Révoquer le jeton export mensuel").click()
    expect(page.locator("#token-list")).to_have_text("Aucun jeton actif.")
    expect(page.locator("#toast")).to_have_text("Jeton révoqué.")
    expect(page.locator("#token-secret")).to_have_count(0)
    assert httpx.get(f"{live_server.url}/api/v1/me", headers=bearer).status_code == 401


def test_language_switch_in_settings(page: Page, clinician: Person, shoot: Shoot) -> None:
    sign_in(page, clinician)
    open_settings(page)
    page.get_by_label("English").check()
    expect(page.get_by_role("heading", level=1)).to_have_text("Settings")
    assert page.evaluate("document.documentElement.lang") == "en"
    expect(page.get_by_role("link", name="Inbox")).to_be_visible()
    expect(page.get_by_role("navigation")).to_have_attribute("aria-label", "Main navigation")
    expect(page.get_by_role("heading", name="Personal access tokens")).to_be_visible()
    assert_accessible(page)
    shoot(page, "settings-en")
    page.get_by_role("link", name="Inbox").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Inbox")
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("Inbox")
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Français").check()
    expect(page.get_by_role("heading", level=1)).to_have_text("Réglages")
    assert page.evaluate("document.documentElement.lang") == "fr"


STATE_JS = """
async () => ({
  caches: await caches.keys(),
  databases: (await indexedDB.databases()).map((d) => d.name),
  local: localStorage.length,
  session: sessionStorage.length,
  cookie: document.cookie,
})
"""

LEAVE_TRACES_JS = """
async () => {
  localStorage.setItem("hds.lang", "fr");
  sessionStorage.setItem("draft", "x");
  await new Promise((resolve, reject) => {
    const open = indexedDB.open("hds-outbox", 1);
    open.onupgradeneeded = () => open.result.createObjectStore("messages");
    open.onsuccess = () => { open.result.close(); resolve(); };
    open.onerror = () => reject(open.error);
  });
  const cache = await caches.open("hds-leftover");
  await cache.put("/leftover", new Response("x"));
}
"""


def test_logout_leaves_nothing_behind(
    page: Page, context: BrowserContext, clinician: Person, live_server: LiveServer
) -> None:
    sign_in(page, clinician)
    wait_for_worker(page)
    page.evaluate(LEAVE_TRACES_JS)
    before = page.evaluate(STATE_JS)
    assert "hds-outbox" in before["databases"]
    assert "hds-leftover" in before["caches"]
    session_cookie = next(c for c in context.cookies() if c["name"] == SESSION_COOKIE)

    page.get_by_role("button", name="Se déconnecter").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Connexion")
    assert page.url.endswith("/#/signin")

    # The page that loads after logout registers the worker afresh; it precaches the shell.
    wait_for_worker(page)
    shell = current_shell()
    after = page.evaluate(STATE_JS)
    assert after == {
        "caches": [shell.cache_name],
        "databases": [],
        "local": 0,
        "session": 0,
        "cookie": "",
    }
    assert sorted(caches_of(page)[shell.cache_name]) == sorted(shell.files)
    assert not [c for c in context.cookies() if c["name"] == SESSION_COOKIE]
    # The session is over on the server too: its cookie no longer opens anything.
    replay = httpx.get(
        f"{live_server.url}/api/v1/me", cookies={SESSION_COOKIE: session_cookie["value"]}
    )
    assert replay.status_code == 401
    # And the app shows the sign-in page for any screen.
    page.goto("/#/settings")
    expect(page.get_by_role("heading", level=1)).to_have_text("Connexion")
