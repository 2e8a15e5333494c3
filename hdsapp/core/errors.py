"""The one error type of the service and its RFC 9457 problem rendering.

A use case raises ``HdsError`` (or a subclass); the edge renders it: problem+json on /api,
OperationOutcome on /fhir. Messages are written for the client and must never carry health data,
key material or internals; the request id ties a 5xx to the server log.
"""

from __future__ import annotations

from typing import Any

PROBLEM_TYPE_PREFIX = "urn:hdsapp:problem:"
PROBLEM_MEDIA_TYPE = "application/problem+json"


class HdsError(Exception):
    status: int = 400
    code: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        title: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        if title is not None:
            self.title = title
        self.detail = detail or self.title
        self.extra = extra or {}
        self.headers = headers or {}
        super().__init__(self.detail)


class BadRequest(HdsError):
    pass


class Unauthenticated(HdsError):
    status, code, title = 401, "unauthenticated", "Authentication required"


class Forbidden(HdsError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(HdsError):
    status, code, title = 404, "not-found", "Not found"


class MethodNotAllowed(HdsError):
    status, code, title = 405, "method-not-allowed", "Method not allowed"


class Conflict(HdsError):
    status, code, title = 409, "conflict", "Conflict"


class PayloadTooLarge(HdsError):
    status, code, title = 413, "payload-too-large", "Request body too large"


class UnsupportedMediaType(HdsError):
    status, code, title = 415, "unsupported-media-type", "Unsupported media type"


class Unprocessable(HdsError):
    status, code, title = 422, "validation-failed", "The request is not valid"


class TooManyRequests(HdsError):
    status, code, title = 429, "too-many-requests", "Too many requests"


class ServiceUnavailable(HdsError):
    status, code, title = 503, "unavailable", "Service unavailable"


class InternalError(HdsError):
    status, code, title = 500, "internal-error", "Internal server error"


def problem_body(error: HdsError, *, request_id: str, instance: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + error.code,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "instance": instance,
        "request_id": request_id,
    }
    body.update(error.extra)
    return body
