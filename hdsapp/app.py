"""create_app(): middleware order, routers, exception handlers, lifespan."""

from __future__ import annotations

import http
import logging
import traceback
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import Scope

from hdsapp.config import Settings, get_settings
from hdsapp.core.crypto.errors import CryptoError
from hdsapp.core.crypto.keyring import keyring_for
from hdsapp.core.db import Database
from hdsapp.core.errors import (
    PROBLEM_MEDIA_TYPE,
    BadRequest,
    HdsError,
    InternalError,
    Unprocessable,
    problem_body,
)
from hdsapp.core.http import BodySizeLimitMiddleware, RequestContextMiddleware, current_request_id
from hdsapp.core.jobs import configure_celery
from hdsapp.core.modules import domain_modules
from hdsapp.keys import service as keys
from hdsapp.policy import load_table
from hdsapp.web import endpoints as web_endpoints

log = logging.getLogger(__name__)

ErrorRenderer = Callable[[Request, HdsError], Response]


def render_problem(request: Request, error: HdsError) -> Response:
    body = problem_body(error, request_id=current_request_id(), instance=request.url.path)
    return JSONResponse(
        body, status_code=error.status, media_type=PROBLEM_MEDIA_TYPE, headers=error.headers
    )


def render_error(request: Request, error: HdsError) -> Response:
    """Render with the renderer registered for the path (e.g. OperationOutcome on /fhir)."""
    renderers: list[tuple[str, ErrorRenderer]] = request.app.state.error_renderers
    for prefix, renderer in renderers:
        if request.url.path.startswith(prefix):
            return renderer(request, error)
    return render_problem(request, error)


async def _on_hds_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HdsError)
    return render_error(request, exc)


async def _on_crypto_error(request: Request, exc: Exception) -> Response:
    # A corrupted ciphertext, a missing or shredded key, an unreachable key provider: never
    # garbage plaintext, never a traceback. The message names ids and versions only.
    log.error("crypto failure", extra={"error": type(exc).__name__, "detail": str(exc)})
    return render_error(
        request,
        InternalError("Protected data could not be decrypted or encrypted.", code="crypto-failure"),
    )


def check_key_store(app: FastAPI) -> None:
    """Re-apply the shred ledger, then refuse to serve if stored data needs a key version that
    is missing or does not unwrap (hdsapp.keys.service.startup), naming what is missing."""
    settings: Settings = app.state.settings
    problems = keys.startup(
        database=app.state.database,
        keyring=app.state.keyring,
        require_root=settings.env == "production",
    )
    for problem in problems:
        log.error("key store self-check failed", extra={"problem": problem})
    if problems:
        raise RuntimeError("key store self-check failed, refusing to serve: " + "; ".join(problems))


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return render_error(
            request, BadRequest("The body is not valid JSON.", code="malformed-json")
        )
    # Never echo "input": it may be health data.
    details = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]
    return render_error(request, Unprocessable(extra={"errors": details}))


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    phrase = http.HTTPStatus(exc.status_code).phrase
    code = phrase.lower().replace(" ", "-").replace("'", "")
    detail = exc.detail if isinstance(exc.detail, str) else phrase
    error = HdsError(detail, status=exc.status_code, code=code, title=phrase)
    error.headers = dict(exc.headers or {})
    return render_error(request, error)


def _on_unexpected(scope: Scope, exc: BaseException) -> Response:
    # The message may carry data (pydantic and driver errors quote values), and so may source
    # lines: log the type and where it happened, nothing else.
    frames = [
        f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(exc.__traceback__)
    ]
    log.error("unhandled error", extra={"error": type(exc).__name__, "trace": frames})
    return render_error(Request(scope), InternalError("An unexpected error occurred."))


def _body_limit(settings: Settings) -> Callable[[Scope], int]:
    def limit_for(scope: Scope) -> int:
        for name, value in scope["headers"]:
            if name == b"content-type" and value.startswith(b"multipart/form-data"):
                return settings.max_upload_bytes
        return settings.max_body_bytes

    return limit_for


# Routes under /api/v1 that need no policy action: authentication and the caller's own account.
ROUTES_WITHOUT_ACTION = ("/api/v1/auth/", "/api/v1/me")


def check_route_actions(app: FastAPI) -> None:
    """Refuse to start if a route under /api/v1 declares no policy action (``openapi_extra``
    from ``hdsapp.policy.route_action``), names one the table does not know, or is neither
    that nor explicitly public (``hdsapp.policy.PUBLIC_ROUTE``)."""
    actions = load_table().actions
    problems = []
    for context in iter_route_contexts(app.routes):
        route, path = context.original_route, context.path or ""
        if not isinstance(route, APIRoute) or not path.startswith("/api/v1/"):
            continue
        if path.startswith(ROUTES_WITHOUT_ACTION):
            continue
        extra = route.openapi_extra or {}
        action = extra.get("x-hds-action")
        if action is None and extra.get("x-hds-public") is True:
            continue
        also = extra.get("x-hds-also", [])
        for name in [action, *also]:
            if name not in actions:
                methods = ",".join(sorted(route.methods or ()))
                problems.append(f"{methods} {path}: no known policy action ({name!r})")
    if problems:
        raise RuntimeError("routes without a policy action: " + "; ".join(problems))


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        check_key_store(app)
        yield
        if owns_database:
            app.state.database.dispose()

    owns_database = database is None
    app = FastAPI(
        title="hdsapp",
        version="0.1.0",
        description="Care coordination for French private-practice health professionals.",
        # FastAPI's /docs pages load Swagger UI from a CDN: no page, only the document.
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.database = database or Database(
        settings.effective_database_url, pool_size=settings.db_pool_size
    )
    app.state.celery = configure_celery(settings)
    app.state.keyring = keyring_for(settings)
    app.state.error_renderers = []

    app.add_exception_handler(HdsError, _on_hds_error)
    app.add_exception_handler(CryptoError, _on_crypto_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)

    for module in domain_modules("endpoints"):
        app.include_router(module.router)
        # (path prefix, renderer) pairs, e.g. OperationOutcome on /fhir (hdsapp.fhir_api).
        app.state.error_renderers.extend(getattr(module, "error_renderers", ()))
    check_route_actions(app)
    app.mount("/static", StaticFiles(directory=web_endpoints.STATIC_DIR), name="static")

    # Added innermost first: the request context wraps everything, so even a 413 or a
    # rejected Host header carries the security headers and a request id.
    app.add_middleware(BodySizeLimitMiddleware, limit_for=_body_limit(settings))
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.trusted_hosts)
    app.add_middleware(RequestContextMiddleware, on_unexpected=_on_unexpected)
    return app
