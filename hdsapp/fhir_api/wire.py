"""What an interaction receives and returns, and the FHIR HTTP rules that do not depend on the
web framework: media types and ``_format``, strict JSON bodies, ``Prefer``, ETags.

An interaction is ``(Services, FhirRequest) -> FhirResult``; ``render`` turns the result into a
status, headers and body bytes. Errors are ``HdsError``s (``outcome`` renders them).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from sqlmodel import Session

from hdsapp.config import Settings
from hdsapp.core.actor import Actor
from hdsapp.core.crypto.keyring import Keyring
from hdsapp.core.db import Database
from hdsapp.core.errors import BadRequest, HdsError, NotFound, UnsupportedMediaType

FHIR_JSON = "application/fhir+json"
# What a body may be declared as: the FHIR type, plain JSON (most HTTP libraries' default) and
# the DSTU2 name some clients still send.
JSON_BODY_TYPES = frozenset({FHIR_JSON, "application/json", "application/json+fhir"})
# ``_format`` values and ``Accept`` types that ask for JSON.
JSON_FORMATS = frozenset({"json", *JSON_BODY_TYPES})
ACCEPT_ANY = frozenset({"*/*", "application/*"})
FHIR_VERSION = "4.0.1"


class NotAcceptable(HdsError):
    status, code, title = 406, "not-acceptable", "Not acceptable"


class PreconditionFailed(HdsError):
    status, code, title = 412, "precondition-failed", "Precondition failed"


class ServiceArgs(TypedDict):
    """The keyword arguments every use case takes (``use_case(**services.args(), ...)``)."""

    session: Session
    database: Database
    actor: Actor
    settings: Settings
    keyring: Keyring


@dataclass(frozen=True, kw_only=True, slots=True)
class Services:
    """What the domain services need, passed through by the adapter."""

    session: Session
    database: Database
    actor: Actor
    settings: Settings
    keyring: Keyring

    def args(self) -> ServiceArgs:
        return ServiceArgs(
            session=self.session,
            database=self.database,
            actor=self.actor,
            settings=self.settings,
            keyring=self.keyring,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class SearchParam:
    """One search parameter a resource type serves. ``definition`` and ``documentation``
    come from its SearchParameter artefact (``fhir/SearchParameter/``)."""

    name: str
    type: str
    modifiers: frozenset[str] = frozenset()
    definition: str = ""
    documentation: str = ""
    repeatable: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class FhirRequest:
    """One FHIR interaction request, parsed from HTTP by the adapter.

    ``base``: the absolute URL of the group's FHIR base, without a trailing slash.
    ``params``: the query string, in order, repeated names kept. ``headers``: lower-case names.
    ``search_params``: those the resource type serves (set by the adapter from the registry).
    """

    method: str
    base: str
    group_id: uuid.UUID
    resource_type: str | None = None
    id: str | None = None
    params: tuple[tuple[str, str], ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    search_params: tuple[SearchParam, ...] = ()

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def param_values(self, name: str) -> list[str]:
        return [value for key, value in self.params if key == name]

    def url(self, *parts: str) -> str:
        return "/".join([self.base, *parts])


@dataclass(kw_only=True, slots=True)
class FhirResult:
    """What an interaction answers: a status and a resource (None: no body), and the
    headers FHIR asks for (``ETag`` from ``version``, ``Location``, ``Last-Modified``)."""

    status: int = 200
    resource: Mapping[str, Any] | None = None
    version: str | None = None
    last_updated: str | None = None
    location: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # For create and update: the body of ``Prefer: return=OperationOutcome``.
    message: str | None = None


Interaction = Callable[[Services, FhirRequest], FhirResult]


# -- reading a request --------------------------------------------------------------------------


def _media_type(value: str) -> tuple[str, dict[str, str]]:
    mime, *rest = value.split(";")
    params = {}
    for part in rest:
        name, _, param = part.partition("=")
        params[name.strip().lower()] = param.strip().strip('"').lower()
    return mime.strip().lower(), params


def check_format(request: FhirRequest) -> None:
    """``_format`` and ``Accept`` must allow JSON (this server speaks JSON only): 406 else."""
    for value in request.param_values("_format"):
        mime, _ = _media_type(value)
        if mime not in JSON_FORMATS:
            raise NotAcceptable(
                "This server answers in JSON only (_format=json or application/fhir+json).",
                code="format-not-supported",
            )
    accept = request.header("accept")
    if accept:
        offered = {_media_type(part)[0] for part in accept.split(",") if part.strip()}
        if offered and not offered & (JSON_BODY_TYPES | ACCEPT_ANY):
            raise NotAcceptable(
                "This server answers in application/fhir+json only.",
                code="format-not-supported",
            )


def check_content_type(request: FhirRequest) -> None:
    """A body must be declared as JSON in UTF-8: 415 otherwise."""
    value = request.header("content-type")
    if value is None:
        raise UnsupportedMediaType(
            "Send the resource as application/fhir+json.", code="unsupported-media-type"
        )
    mime, params = _media_type(value)
    if mime not in JSON_BODY_TYPES or params.get("charset", "utf-8") not in {"utf-8", "utf8"}:
        raise UnsupportedMediaType(
            "Send the resource as application/fhir+json (UTF-8).", code="unsupported-media-type"
        )


def _no_duplicates(pairs: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey
        found[key] = value
    return found


class _DuplicateKey(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_resource(request: FhirRequest) -> dict[str, Any]:
    """The body as a JSON object, strictly: UTF-8, RFC 8259 JSON only (no comments, trailing
    commas, unquoted names, NaN or Infinity), no repeated property. 400 otherwise; the error
    gives the position, never the content."""
    check_content_type(request)
    if not request.body.strip():
        raise BadRequest("The request has no body.", code="empty-body")
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The body is not UTF-8.", code="malformed-json") from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _DuplicateKey:
        raise BadRequest("The body repeats a JSON property name.", code="malformed-json") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"The body is not valid JSON (line {exc.lineno}, column {exc.colno}).",
            code="malformed-json",
        ) from None
    except ValueError:
        raise BadRequest("The body is not valid JSON.", code="malformed-json") from None
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object (a resource).", code="not-a-resource")
    return data


Return = Literal["minimal", "representation", "OperationOutcome"]


def prefer(request: FhirRequest, name: str) -> str | None:
    """One token of the ``Prefer`` header (``return``, ``handling``)."""
    value = request.header("prefer") or ""
    for part in value.split(","):
        for token in part.split(";"):
            key, _, setting = token.strip().partition("=")
            if key.strip().lower() == name:
                return setting.strip().strip('"')
    return None


def lenient(request: FhirRequest) -> bool:
    """``Prefer: handling=lenient``: unknown search parameters are ignored, not refused."""
    return prefer(request, "handling") == "lenient"


_ETAG = re.compile(r'\s*(?:W/)?"([0-9]{1,9})"\s*')


def if_match(request: FhirRequest) -> int | None:
    """The version named by ``If-Match`` (``W/"3"``), None without the header; 400 if it is
    not a version of this server."""
    value = request.header("if-match")
    if value is None:
        return None
    match = _ETAG.fullmatch(value)
    if match is None:
        raise BadRequest('If-Match takes a version: W/"<versionId>".', code="invalid-if-match")
    return int(match.group(1))


def etag(version: str) -> str:
    return f'W/"{version}"'


def parse_id(value: str | None, resource_type: str) -> uuid.UUID:
    """A logical id of this server (a UUID); anything else is unknown: 404."""
    try:
        return uuid.UUID(value or "")
    except ValueError:
        raise NotFound(f"No such {resource_type}.", code="not-found") from None


# -- writing a result ---------------------------------------------------------------------------


def dumps(resource: Mapping[str, Any], *, pretty: bool = False) -> bytes:
    if pretty:
        return json.dumps(resource, ensure_ascii=False, indent=2).encode()
    return json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode()


def http_date(instant: str) -> str:
    moment = dt.datetime.fromisoformat(instant.replace("Z", "+00:00"))
    return email.utils.format_datetime(moment.astimezone(dt.UTC), usegmt=True)


def information(message: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "information", "code": "informational", "diagnostics": message}],
    }


def render(request: FhirRequest, result: FhirResult) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a result, as ``Prefer: return=`` asks for writes."""
    headers = dict(result.headers)
    if result.version is not None:
        headers["etag"] = etag(result.version)
    if result.last_updated is not None:
        headers["last-modified"] = http_date(result.last_updated)
    if result.location is not None:
        headers["location"] = result.location
    body: Mapping[str, Any] | None = result.resource
    if request.method in {"POST", "PUT"}:
        wanted = prefer(request, "return")
        if wanted == "minimal":
            body = None
        elif wanted == "OperationOutcome":
            body = information(result.message or "Done.")
    if body is None:
        return result.status, headers, b""
    headers["content-type"] = f"{FHIR_JSON}; charset=utf-8"
    pretty = any(value == "true" for value in request.param_values("_pretty"))
    return result.status, headers, dumps(body, pretty=pretty)


def reference_id(value: str, resource_type: str, *, base: str | None = None) -> uuid.UUID:
    """The id in a reference to ``resource_type``: ``Type/{id}``, the bare id, or an absolute
    URL on ``base``. ValueError if it is none of these."""
    if base is not None and value.startswith(base + "/"):
        value = value[len(base) + 1 :]
    value = value.removeprefix(f"{resource_type}/")
    if "/" in value:
        raise ValueError(value)
    return uuid.UUID(value)


def instant(moment: dt.datetime) -> str:
    """A FHIR instant (UTC, ``Z``)."""
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
