"""The real-browser harness: Debian's Chromium driven by Playwright against the real app.

- Chromium is ``/usr/bin/chromium`` (or ``HDS_TEST_CHROMIUM``); when it is missing and we are
  root on Debian, the harness installs it with apt-get (Playwright's own browser download is
  never used). Still missing: skip, or fail under ``HDS_TEST_REQUIRE_SERVICES=1``.
- One browser per session, a fresh context (profile) per test.
- The app runs in uvicorn on a free loopback port, on the test's migrated database. Chromium
  treats http://127.0.0.1 as a secure context: service workers and ``__Host-`` cookies work.
- Every test is watched: a request to another origin, a CSP violation, a console error or an
  uncaught page error fails it (the ``guard`` fixture checks at teardown).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    ViewportSize,
    WebError,
    expect,
    sync_playwright,
)

from hdsapp.config import Settings
from hdsapp.core.db import Database
from tests.conftest import REPO_ROOT, require_service
from tests.web.people import People

# Assertions wait for the app as long as actions do, on a loaded CI machine too.
expect.set_options(timeout=15_000)

CHROMIUM = Path(os.environ.get("HDS_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
ARTIFACTS = REPO_ROOT / "test-artifacts"
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}

# Runs in every page before any of its scripts: a CSP violation becomes a console error.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI} ` +
    `at ${e.sourceFile}:${e.lineNumber}`);
}, true);
"""

_FAILED_LOAD = re.compile(r"^Failed to load resource: the server responded with a status of (\d+)")


@pytest.fixture
def backend() -> str:
    # The browser suite checks the front end; the APIs it calls are tested on both backends in
    # their own suites. SQLite keeps this suite fast.
    return "sqlite"


def _install_chromium() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, timeout=900)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "chromium"],
        check=False,
        env=env,
        timeout=1800,
    )


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists() and "HDS_TEST_CHROMIUM" not in os.environ:
        _install_chromium()
    if not CHROMIUM.exists():
        require_service(f"Chromium ({CHROMIUM})")
    return CHROMIUM


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright, chromium_path: Path) -> Iterator[Browser]:
    instance = playwright.chromium.launch(
        executable_path=str(chromium_path), headless=True, args=CHROMIUM_ARGS
    )
    yield instance
    instance.close()


class LiveServer:
    """The app under uvicorn in a thread, on a port the OS picked."""

    def __init__(self, app: FastAPI) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the app did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


@pytest.fixture
def live_server(app: FastAPI) -> Iterator[LiveServer]:
    server = LiveServer(app)
    server.start()
    yield server
    server.stop()


@dataclass
class Guard:
    """What a test's pages did that they must not: checked when the test ends."""

    origin: str
    requests: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    # (path, status) pairs a test expects to fail, e.g. the signed-out probe of /api/v1/me.
    expected_http_errors: set[tuple[str, int]] = field(default_factory=set)

    # Console errors a test provokes on purpose (a regular expression each).
    expected_console: list[re.Pattern[str]] = field(default_factory=list)

    def expect_http_error(self, path: str, status: int) -> None:
        self.expected_http_errors.add((path, status))

    def expect_console_error(self, pattern: str) -> None:
        self.expected_console.append(re.compile(pattern))

    def on_request(self, request: Request) -> None:
        url = request.url
        self.requests.append(f"{request.method} {url}")
        parts = urlsplit(url)
        # data:, blob: and about: never leave the page; chrome: and chrome-extension: are the
        # browser's own PDF viewer showing a blob: preview (no network either).
        if parts.scheme in {"data", "blob", "about", "chrome", "chrome-extension"}:
            return
        if f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.foreign.append(url)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        text = message.text
        failed = _FAILED_LOAD.match(text)
        if failed:
            path = urlsplit(message.location.get("url", "")).path
            if (path, int(failed.group(1))) in self.expected_http_errors:
                return
        if any(pattern.search(text) for pattern in self.expected_console):
            return
        self.console_errors.append(f"{text} ({message.location.get('url', '')})")

    def on_web_error(self, error: WebError) -> None:
        self.page_errors.append(str(error.error))

    def problems(self) -> list[str]:
        found = [f"request to another origin: {url}" for url in self.foreign]
        found += [f"console error: {text}" for text in self.console_errors]
        found += [f"page error: {text}" for text in self.page_errors]
        return found

    def check(self) -> None:
        problems = self.problems()
        assert not problems, "\n".join(problems)


@pytest.fixture
def guard(live_server: LiveServer) -> Guard:
    watcher = Guard(origin=live_server.url)
    # Every signed-out load asks whether a session exists: the 401 is the answer.
    watcher.expect_http_error("/api/v1/auth/session", 401)
    return watcher


class NewContext(Protocol):
    def __call__(self) -> BrowserContext: ...


@pytest.fixture
def contexts(browser: Browser, live_server: LiveServer, guard: Guard) -> Iterator[NewContext]:
    """Make watched browser contexts (a second person, a second device); all are closed and
    checked when the test ends."""
    made: list[BrowserContext] = []

    def make() -> BrowserContext:
        ctx = browser.new_context(
            base_url=live_server.url,
            viewport=PHONE,
            locale="fr-FR",
            timezone_id="Europe/Paris",
            service_workers="allow",
        )
        # Generous for a CI machine running other suites: a passing step waits only as long as
        # the app takes, a failing one a little longer.
        ctx.set_default_timeout(30_000)
        ctx.add_init_script(CSP_LISTENER)
        ctx.on("request", guard.on_request)
        ctx.on("console", guard.on_console)
        ctx.on("weberror", guard.on_web_error)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()
    guard.check()


@pytest.fixture
def context(contexts: NewContext) -> BrowserContext:
    return contexts()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


class Shoot(Protocol):
    def __call__(self, page: Page, name: str, at: str | None = None) -> None: ...


@pytest.fixture
def shoot() -> Shoot:
    """Save the page on a phone and on a desktop viewport under test-artifacts/screens/."""
    folder = ARTIFACTS / "screens"
    folder.mkdir(parents=True, exist_ok=True)

    def take(page: Page, name: str, at: str | None = None) -> None:
        before = page.viewport_size
        for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
            page.set_viewport_size(size)
            page.evaluate("window.scrollTo(0, 0)")
            if at is not None:
                page.locator(at).first.evaluate(
                    "(el) => window.scrollTo(0, el.getBoundingClientRect().top + scrollY - 72)"
                )
            page.wait_for_timeout(50)
            # What the user sees on that screen (a full-page capture would draw the fixed
            # navigation in the middle of the page).
            page.screenshot(path=str(folder / f"{name}-{label}.png"))
        if before:
            page.set_viewport_size(before)

    return take


@pytest.fixture
def people(database: Database, settings: Settings, app: FastAPI) -> People:
    # The app's own key store: the group keys it makes are the ones the app opens.
    return People(database, settings, app.state.keyring)
