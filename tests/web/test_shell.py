"""The PWA as files and HTTP answers: shell, service worker, manifest, icons, hygiene."""

from __future__ import annotations

import json
import re
import shutil
import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hdsapp.core.http import CONTENT_SECURITY_POLICY
from hdsapp.web import shell as shell_module
from hdsapp.web.shell import (
    INDEX_FILE,
    MANIFEST_FILE,
    SERVICE_WORKER_TEMPLATE,
    STATIC_DIR,
    WEB_DIR,
    build_shell,
    current_shell,
)

JS_FILES = sorted(STATIC_DIR.rglob("*.js"))
HTML_FILES = [INDEX_FILE]


def test_index_is_the_shell_page(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert '<script type="module" src="/static/js/main.js"></script>' in response.text
    assert '<link rel="manifest" href="/manifest.webmanifest">' in response.text
    assert '<html lang="fr"' in response.text


def test_service_worker_is_served_from_the_root_with_its_version(client: TestClient) -> None:
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert "service-worker-allowed" not in response.headers
    text = response.text
    assert "__HDS_SHELL__" not in text
    found = re.search(r"^const SHELL = (\{.*\});$", text, re.MULTILINE)
    assert found, "the shell description is written into the worker"
    description = json.loads(found.group(1))
    shell = current_shell()
    assert description == {"version": shell.version, "files": list(shell.files)}
    assert re.fullmatch(r"[0-9a-f]{16}", shell.version)


def test_shell_lists_exactly_the_page_manifest_and_static_files() -> None:
    shell = build_shell()
    expected = {"/", "/manifest.webmanifest"} | {
        "/static/" + path.relative_to(STATIC_DIR).as_posix()
        for path in STATIC_DIR.rglob("*")
        if path.is_file()
    }
    assert set(shell.files) == expected
    assert len(shell.files) == len(expected)
    assert not [url for url in shell.files if url.startswith(("/api", "/fhir"))]


def test_every_shell_file_is_served(client: TestClient) -> None:
    for url in current_shell().files:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def _copy_web(tmp_path: Path) -> Path:
    target = tmp_path / "web"
    shutil.copytree(WEB_DIR, target, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return target


def _shell_of(web: Path) -> shell_module.Shell:
    return build_shell(
        static_dir=web / "static",
        index_file=web / "index.html",
        manifest_file=web / "manifest.webmanifest",
        template_file=web / "sw.js",
    )


@pytest.mark.parametrize(
    "change",
    ["static/app.css", "static/js/main.js", "index.html", "manifest.webmanifest", "sw.js"],
)
def test_version_changes_with_any_shell_file(tmp_path: Path, change: str) -> None:
    web = _copy_web(tmp_path)
    before = _shell_of(web)
    assert before.version == build_shell().version
    with (web / change).open("a", encoding="utf-8") as handle:
        handle.write("\n/* changed */\n")
    after = _shell_of(web)
    assert after.version != before.version
    assert after.cache_name == f"hds-shell-{after.version}"
    assert after.version.encode() in after.service_worker


def test_version_changes_when_a_file_is_added(tmp_path: Path) -> None:
    web = _copy_web(tmp_path)
    before = _shell_of(web)
    (web / "static" / "extra.txt").write_text("x")
    after = _shell_of(web)
    assert after.version != before.version
    assert "/static/extra.txt" in after.files


def test_template_needs_its_placeholder(tmp_path: Path) -> None:
    web = _copy_web(tmp_path)
    (web / "sw.js").write_text("const SHELL = null;")
    with pytest.raises(RuntimeError, match="__HDS_SHELL__"):
        _shell_of(web)


def test_service_worker_never_intercepts_api_or_fhir() -> None:
    source = SERVICE_WORKER_TEMPLATE.read_text()
    network_only = re.search(r"const NETWORK_ONLY = (/.+/);", source)
    assert network_only
    assert network_only.group(1) == r"/^\/(api|fhir)(\/|$)/"
    # The guard comes before the only respondWith.
    assert source.index("if (NETWORK_ONLY.test(url.pathname)) return;") < source.index(
        "event.respondWith("
    )
    assert source.count("event.respondWith(") == 1
    assert "cache.put(" not in source  # nothing is cached at run time, only the precache


def test_manifest(client: TestClient) -> None:
    response = client.get("/manifest.webmanifest")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/manifest+json"
    manifest = response.json()
    assert manifest["start_url"] == "/"
    assert manifest["scope"] == "/"
    assert manifest["display"] == "standalone"
    assert manifest["lang"] == "fr"
    purposes = {icon.get("purpose", "any") for icon in manifest["icons"]}
    assert purposes == {"any", "maskable"}
    sizes = set()
    for icon in manifest["icons"]:
        served = client.get(icon["src"])
        assert served.status_code == 200, icon["src"]
        if icon["type"] == "image/png":
            width, height = _png_size(served.content)
            assert icon["sizes"] == f"{width}x{height}"
            sizes.add(width)
        else:
            assert icon["type"] == "image/svg+xml"
            assert served.content.startswith(b"<svg")
    assert {192, 512} <= sizes


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


class _MarkupAudit(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if "style" in names:
            self.problems.append(f"style attribute on <{tag}>")
        self.problems += [f"{name} on <{tag}>" for name in names if name.startswith("on")]
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script":
            values = dict(attrs)
            if not values.get("src"):
                self.problems.append("inline <script>")
            elif not str(values["src"]).startswith("/static/"):
                self.problems.append(f"script from {values['src']}")
        for name in ("src", "href"):
            value = dict(attrs).get(name) or ""
            if value.startswith(("http:", "https:", "//")):
                self.problems.append(f"{name}={value} on <{tag}>")


@pytest.mark.parametrize("path", HTML_FILES, ids=lambda p: p.name)
def test_markup_has_no_inline_script_style_or_other_origin(path: Path) -> None:
    audit = _MarkupAudit()
    audit.feed(path.read_text())
    assert audit.problems == []


# Constructs that inject markup or code, or reach another origin.
_FORBIDDEN_JS = [
    r"\.innerHTML\b",
    r"\.outerHTML\b",
    r"insertAdjacentHTML",
    r"document\.write",
    r"\beval\(",
    r"new Function\(",
    r"setAttribute\(\s*[\"']style",
    r"setAttribute\(\s*[\"']on",
    r"\bimport\(\s*[\"']https?:",
    r"\bsessionStorage\.setItem",
]
_URL = re.compile(r"https?://[^\s\"'`)]+")
_ALLOWED_URLS = {
    "http://www.w3.org/2000/svg",
    # FHIR canonical URLs are names inside the resources, never fetched.
    "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability",
    "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-identity-status",
}


@pytest.mark.parametrize(
    "path",
    [*JS_FILES, SERVICE_WORKER_TEMPLATE, STATIC_DIR / "app.css"],
    ids=lambda p: p.relative_to(WEB_DIR).as_posix(),
)
def test_scripts_and_styles_stay_on_this_origin(path: Path) -> None:
    source = path.read_text()
    for pattern in _FORBIDDEN_JS:
        assert not re.search(pattern, source), f"{path.name}: {pattern}"
    assert set(_URL.findall(source)) <= _ALLOWED_URLS
    if path.suffix == ".css":
        assert "@import" not in source
        assert not re.search(r"url\(\s*[\"']?(https?:|//)", source)


def test_svg_icons_are_self_contained() -> None:
    for path in (STATIC_DIR / "icons").glob("*.svg"):
        source = path.read_text()
        assert set(_URL.findall(source)) <= _ALLOWED_URLS, path.name
        assert "<script" not in source
        assert "href" not in source


def test_manifest_file_is_json() -> None:
    assert json.loads(MANIFEST_FILE.read_text())["short_name"] == "hdsapp"


def _dictionary_keys(name: str) -> set[str]:
    source = (STATIC_DIR / "js" / "i18n" / name).read_text()
    return set(re.findall(r'^\s*"([^"]+)":', source, re.MULTILINE))


def test_every_translated_key_exists_in_both_languages() -> None:
    fr, en = _dictionary_keys("fr.js"), _dictionary_keys("en.js")
    assert fr == en
    used: set[str] = set()
    plural: set[str] = set()
    for path in JS_FILES:
        if "i18n" in path.parts:
            continue
        source = path.read_text()
        used |= set(re.findall(r'\bt\(\s*"([\w.-]+)"', source))
        plural |= set(re.findall(r'\btn\(\s*"([\w.-]+)"', source))
    assert used - fr == set()
    assert {f"{key}.{form}" for key in plural for form in ("one", "other")} - fr == set()
    for name in ("index.html",):
        markup = (WEB_DIR / name).read_text()
        assert set(re.findall(r'data-i18n(?:-aria-label)?="([\w.-]+)"', markup)) <= fr
