"""The application shell: the files the service worker precaches, and their version.

The shell is ``index.html`` (served at ``/``), the web manifest and every file under ``static/``.
Its version is a hash of all of them and of the service-worker template, computed once when the
app starts; it is written into ``/sw.js``, so any change to the shell changes the worker's bytes,
the browser installs the new worker, and the new worker precaches the new shell into a cache
named after the version and deletes the old one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
INDEX_FILE = WEB_DIR / "index.html"
MANIFEST_FILE = WEB_DIR / "manifest.webmanifest"
SERVICE_WORKER_TEMPLATE = WEB_DIR / "sw.js"

STATIC_PREFIX = "/static/"
# The literal the template holds where the shell description goes.
SHELL_PLACEHOLDER = '"__HDS_SHELL__"'
CACHE_PREFIX = "hds-shell-"


@dataclass(frozen=True)
class Shell:
    version: str
    # URL paths, in a stable order.
    files: tuple[str, ...]
    service_worker: bytes

    @property
    def cache_name(self) -> str:
        return CACHE_PREFIX + self.version


def static_files(static_dir: Path = STATIC_DIR) -> list[Path]:
    """Every file served under /static that belongs to the shell (no dotfiles)."""
    return sorted(
        path
        for path in static_dir.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.parts)
    )


def build_shell(
    *,
    static_dir: Path = STATIC_DIR,
    index_file: Path = INDEX_FILE,
    manifest_file: Path = MANIFEST_FILE,
    template_file: Path = SERVICE_WORKER_TEMPLATE,
) -> Shell:
    sources: list[tuple[str, Path]] = [("/", index_file), ("/manifest.webmanifest", manifest_file)]
    sources += [
        (STATIC_PREFIX + path.relative_to(static_dir).as_posix(), path)
        for path in static_files(static_dir)
    ]
    template = template_file.read_text(encoding="utf-8")
    if template.count(SHELL_PLACEHOLDER) != 1:
        raise RuntimeError(f"{template_file} must hold {SHELL_PLACEHOLDER} exactly once")
    digest = hashlib.sha256()
    for url, path in [*sources, ("/sw.js", template_file)]:
        content = path.read_bytes()
        digest.update(f"{url}\0{len(content)}\0".encode())
        digest.update(content)
    version = digest.hexdigest()[:16]
    files = tuple(url for url, _ in sources)
    description = json.dumps({"version": version, "files": files}, separators=(",", ":"))
    worker = template.replace(SHELL_PLACEHOLDER, description).encode("utf-8")
    return Shell(version=version, files=files, service_worker=worker)


@lru_cache(maxsize=1)
def current_shell() -> Shell:
    """The shell of this process, computed at start-up (first use)."""
    return build_shell()
