"""The PWA, served from the same origin as the API.

``/`` is the shell page, ``/sw.js`` the service worker (root scope, its version written in by
``hdsapp.web.shell``), ``/manifest.webmanifest`` the web manifest; the assets are under
``/static`` (mounted by ``hdsapp.app``). The page, the worker and the manifest are revalidated
on every load (``no-cache``), so a new shell reaches users at their next visit.
"""

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from hdsapp.web.shell import INDEX_FILE, MANIFEST_FILE, STATIC_DIR, current_shell

__all__ = ["STATIC_DIR", "router"]

REVALIDATE = {"cache-control": "no-cache"}

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    current_shell()  # computed with the first page, at the latest
    return FileResponse(INDEX_FILE, media_type="text/html; charset=utf-8", headers=REVALIDATE)


@router.get("/sw.js")
def service_worker() -> Response:
    return Response(
        current_shell().service_worker,
        media_type="text/javascript; charset=utf-8",
        headers=REVALIDATE,
    )


@router.get("/manifest.webmanifest")
def manifest() -> FileResponse:
    return FileResponse(MANIFEST_FILE, media_type="application/manifest+json", headers=REVALIDATE)
