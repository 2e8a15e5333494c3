"""Every error as an OperationOutcome: the status of the ``HdsError``, one issue per problem.

A 422 from a domain service carries its problems as ``{"path", "msg"}`` (FHIRPath-like paths,
``Patient.name[0].given[1]``): each becomes an issue whose ``expression`` names the element.
Messages never quote the submitted values (they may be health data).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hdsapp.core.errors import HdsError

PROBLEM_SYSTEM = "urn:hdsapp:problem"

# http://hl7.org/fhir/issue-type by HTTP status.
_ISSUE_TYPE = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "invalid",
    429: "throttled",
    503: "transient",
}
_BY_CODE = {
    "malformed-json": "structure",
    "empty-body": "structure",
    "not-a-resource": "structure",
    "duplicate-ins": "duplicate",
    "invalid-fhir": "structure",
}


def issue_type(error: HdsError) -> str:
    if error.code in _BY_CODE:
        return _BY_CODE[error.code]
    if error.status >= 500 and error.status != 503:
        return "exception"
    return _ISSUE_TYPE.get(error.status, "processing")


def operation_outcome(error: HdsError) -> dict[str, Any]:
    """The OperationOutcome of ``error`` (severity ``error``, ``fatal`` for 5xx)."""
    severity = "fatal" if error.status >= 500 else "error"
    details = {
        "coding": [{"system": PROBLEM_SYSTEM, "code": error.code}],
        "text": error.detail,
    }
    issues: list[dict[str, Any]] = []
    for problem in error.extra.get("errors") or []:
        if isinstance(problem, Mapping):
            issues.append(_issue(error, severity, details, problem))
    if not issues:
        issues.append({"severity": severity, "code": issue_type(error), "details": details})
    existing = error.extra.get("patient_id")
    if existing is not None:
        issues.append(
            {
                "severity": "information",
                "code": "informational",
                "diagnostics": f"existing resource: Patient/{existing}",
            }
        )
    current = error.extra.get("current_version")
    if current is not None:
        issues.append(
            {
                "severity": "information",
                "code": "informational",
                "diagnostics": f"current version: {current}",
            }
        )
    return {"resourceType": "OperationOutcome", "issue": issues}


def _issue(
    error: HdsError, severity: str, details: dict[str, Any], problem: Mapping[str, Any]
) -> dict[str, Any]:
    issue: dict[str, Any] = {
        "severity": severity,
        "code": _problem_type(error, problem),
        "details": details,
    }
    message = problem.get("msg")
    if isinstance(message, str) and message:
        issue["diagnostics"] = message
    path = problem.get("path")
    if isinstance(path, str) and path:
        issue["expression"] = [path]
    else:
        location = problem.get("loc")
        if isinstance(location, list | tuple) and location:
            issue["expression"] = [".".join(str(part) for part in location)]
    return issue


def _problem_type(error: HdsError, problem: Mapping[str, Any]) -> str:
    message = str(problem.get("msg", ""))
    if "required" in message or "minimum required" in message:
        return "required"
    if message.startswith(("must be a JSON", "may not be", "must name")):
        return "structure"
    if "not permitted" in message.lower() or "extra" in str(problem.get("type", "")):
        return "structure"
    return issue_type(error)
