"""Checking a submitted resource: strictly valid R4 JSON first (``hdsapp.patients.fhir_json``),
then what this server records of it; every problem a 422 issue naming the element."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hdsapp.core.errors import Unprocessable
from hdsapp.fhir_api.wire import reference_id
from hdsapp.patients.fhir_json import FhirInvalid, parse


def check_resource(resource_type: str, resource: dict[str, Any]) -> None:
    """422 (``invalid-fhir``, one issue per element) unless ``resource`` is a valid R4
    ``resource_type``."""
    if resource.get("resourceType") != resource_type:
        raise invalid(
            f"The body is not a {resource_type}.",
            "invalid-fhir",
            [(f"{resource_type}.resourceType", f"must be {resource_type}")],
        )
    try:
        parse(resource_type, resource)
    except FhirInvalid as exc:
        raise Unprocessable(
            f"The FHIR {resource_type} is not valid.",
            code="invalid-fhir",
            extra={"errors": [issue.as_dict() for issue in exc.issues]},
        ) from None


def invalid(message: str, code: str, problems: Sequence[tuple[str, str]]) -> Unprocessable:
    """A 422 whose issues are (element path, what is wrong)."""
    return Unprocessable(
        message, code=code, extra={"errors": [{"path": path, "msg": msg} for path, msg in problems]}
    )


def referenced(value: object, resource_type: str, base: str) -> Any:
    """The id (a UUID) a ``Reference`` object names as ``resource_type`` on this base, or
    None."""
    if not isinstance(value, dict) or not isinstance(value.get("reference"), str):
        return None
    try:
        return reference_id(value["reference"], resource_type, base=base)
    except ValueError:
        return None


def located(exc: Unprocessable, paths: dict[str, str], root: str) -> Unprocessable:
    """A service's 422 (``loc`` ["body", field]) with the element of the resource instead."""
    errors = []
    for problem in exc.extra.get("errors") or []:
        location = problem.get("loc") or []
        field = str(location[-1]) if location else ""
        errors.append({"path": paths.get(field, root), "msg": problem.get("msg", "")})
    return Unprocessable(exc.detail, code=exc.code, extra={"errors": errors})
