"""Strict parsing of FHIR R4 JSON with the ``fhir.resources.R4B`` models.

Why a pass of our own: fhir.resources 8 validates primitives with lax pydantic validators, and
``model_validate(..., strict=True)`` does not reach them (nested elements are validated by a
wrap validator that calls ``model_validate`` again without ``strict``, and the primitive types
are custom). So ``"active": "true"`` becomes ``True``, ``"multipleBirthInteger": "2"`` becomes
``2``, a number becomes a string, and a code outside a required binding passes — all of which a
FHIR server must reject (FHIR JSON, "Primitive types"). ``check_json_types`` walks the parsed JSON
beside the model's fields first and reports every element whose JSON type is wrong, then
``parse`` runs the model's own validation. Errors are located with FHIRPath-like paths
(``Patient.name[0].given[1]``), never with the submitted values (they may be health data).

What is checked, per the FHIR JSON rules:
- boolean elements are JSON ``true``/``false``; integer, positiveInt and unsignedInt are JSON
  integers (not booleans, not strings); decimal is a JSON number; every other primitive (string,
  code, uri, date, dateTime, id, base64Binary, ...) is a JSON string;
- complex elements and resources are JSON objects; repeating elements are non-empty arrays and
  others never arrays; ``null`` only inside arrays of primitives (aligned with ``_element``);
- ``_element`` siblings are objects (arrays of objects or nulls for repeating primitives);
- codes with a required binding listed by the model (e.g. ``gender``) take one of its values;
- ids have at most 64 characters; as the HL7 validator's security checks, plain strings may not
  embed HTML tags and narrative may not carry active content (script, event handlers, frames);
- unknown elements are refused (by the model: ``extra="forbid"``), and so is ``fhir_comments``.
"""

from __future__ import annotations

import decimal
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic
from fhir.resources.R4B import get_fhir_model_class
from fhir_core.fhirabstractmodel import FHIRAbstractModel


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem: where (FHIRPath-like) and what (no value is ever quoted)."""

    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "msg": self.message}


class FhirInvalid(Exception):
    def __init__(self, issues: Sequence[Issue]) -> None:
        super().__init__(f"{len(issues)} problem(s)")
        self.issues = list(issues)


MAX_ID_LENGTH = 64
# As the HL7 validator's security checks: markup in a plain string, active content in narrative.
_HTML_TAG = re.compile(r"<\s*/?\s*[A-Za-z][A-Za-z0-9-]*(\s[^<>]*)?/?\s*>")
_UNSAFE_XHTML = re.compile(
    r"<\s*/?\s*(script|iframe|frame|object|embed|form|input|button|link|meta|style|base)\b"
    r"|\son[a-z]+\s*=|javascript:",
    re.IGNORECASE,
)
_JSON_KIND = {"boolean": "a JSON boolean", "integer": "a JSON integer", "number": "a JSON number"}


def parse(resource_type: str, data: object) -> FHIRAbstractModel:
    """Validate ``data`` (parsed JSON) as a FHIR R4 ``resource_type``; raise FhirInvalid."""
    if not isinstance(data, dict):
        raise FhirInvalid([Issue(resource_type, "must be a JSON object")])
    if data.get("resourceType") != resource_type:
        raise FhirInvalid([Issue(f"{resource_type}.resourceType", f"must be {resource_type!r}")])
    model = get_fhir_model_class(resource_type)
    issues = check_json_types(model, data, resource_type)
    if issues:
        raise FhirInvalid(issues)
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise FhirInvalid(
            [Issue(_path(resource_type, e["loc"]), _message(e)) for e in exc.errors()]
        ) from None
    except (ValueError, TypeError) as exc:  # raised by some model validators directly
        raise FhirInvalid([Issue(resource_type, type(exc).__name__)]) from None


def _message(error: Mapping[str, Any]) -> str:
    # pydantic messages describe the rule, not the input; keep them short.
    return str(error.get("msg", "invalid"))[:200]


def _path(root: str, loc: Sequence[int | str]) -> str:
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in {"__root__", "root"}:
            path += f".{part}"
    return path


def check_json_types(
    model: type[FHIRAbstractModel], data: Mapping[str, Any], path: str
) -> list[Issue]:
    """The JSON type problems of ``data`` against ``model`` (see the module docstring)."""
    issues: list[Issue] = []
    fields = _fields_by_alias(model)
    for key, value in data.items():
        here = f"{path}.{key}"
        if key == "resourceType":
            if not isinstance(value, str):
                issues.append(Issue(here, "must be a JSON string"))
            continue
        if key.startswith("_"):
            primitive = fields.get(key[1:])
            sibling = _extension_model(model, key)
            if primitive is None or sibling is None:
                continue  # unknown: the model refuses it
            issues.extend(
                _check_extension_sibling(sibling, value, here, _is_list(primitive.annotation))
            )
            continue
        field = fields.get(key)
        if field is None:
            if key == "fhir_comments":
                issues.append(Issue(here, "is not a FHIR element"))
            continue  # the model refuses unknown elements itself
        issues.extend(_check_value(field, value, here))
    return issues


def _fields_by_alias(model: type[FHIRAbstractModel]) -> dict[str, pydantic.fields.FieldInfo]:
    # The ``_element`` siblings' model marks no element property: its elements are id and
    # extension.
    sibling = model.__name__ == "FHIRPrimitiveExtension"
    fields = {}
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra
        element = isinstance(extra, dict) and extra.get("element_property")
        if element or (sibling and name in {"id", "extension"}):
            fields[field.alias or name] = field
    return fields


def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) is typing.Union or type(annotation).__name__ == "UnionType":
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(_unwrap_optional(annotation)) in {list, typing.List}  # noqa: UP006


def _item_type(annotation: Any) -> Any:
    inner = _unwrap_optional(annotation)
    if typing.get_origin(inner) in {list, typing.List}:  # noqa: UP006
        return typing.get_args(inner)[0]
    return inner


def _complex_type(annotation: Any) -> type[FHIRAbstractModel] | None:
    """The model class of a complex element or resource, None for a primitive."""
    item = _item_type(annotation)
    getter = getattr(item, "get_model_klass", None)
    if getter is None:
        return None
    klass: type[FHIRAbstractModel] = getter()
    return klass


def _primitive(annotation: Any) -> tuple[Any, set[str]]:
    """The Python type of a primitive element and the names of its FHIR type markers."""
    item = _item_type(annotation)
    if typing.get_origin(item) is typing.Annotated:
        base, *markers = typing.get_args(item)
        return base, {type(marker).__name__ for marker in markers}
    return item, set()


def _json_kind(annotation: Any) -> str:
    """boolean, integer, number or string: the JSON type of a primitive element."""
    base, _ = _primitive(annotation)
    if base is bool:
        return "boolean"
    if base is int:
        return "integer"
    if base is decimal.Decimal:
        return "number"
    return "string"


def _check_value(field: pydantic.fields.FieldInfo, value: Any, path: str) -> list[Issue]:
    repeating = _is_list(field.annotation)
    if value is None:
        return [Issue(path, "may not be null")]
    if repeating:
        if not isinstance(value, list):
            return [Issue(path, "must be a JSON array")]
        if not value:
            return [Issue(path, "may not be an empty array")]
        issues = []
        complex_model = _complex_type(field.annotation)
        for index, item in enumerate(value):
            item_path = f"{path}[{index}]"
            if item is None:
                if complex_model is not None:
                    issues.append(Issue(item_path, "may not be null"))
                continue
            issues.extend(_check_item(field, complex_model, item, item_path))
        return issues
    if isinstance(value, list):
        return [Issue(path, "may not be an array")]
    return _check_item(field, _complex_type(field.annotation), value, path)


def _check_item(
    field: pydantic.fields.FieldInfo,
    complex_model: type[FHIRAbstractModel] | None,
    value: Any,
    path: str,
) -> list[Issue]:
    if complex_model is not None:
        if not isinstance(value, dict):
            return [Issue(path, "must be a JSON object")]
        if complex_model.__name__ in {"Resource", "DomainResource"} or "resourceType" in value:
            resource_type = value.get("resourceType")
            if not isinstance(resource_type, str):
                return [Issue(path, "must name its resourceType")]
            try:
                complex_model = get_fhir_model_class(resource_type)
            except KeyError:
                return [Issue(f"{path}.resourceType", "is not a FHIR resource type")]
        return check_json_types(complex_model, value, path)
    kind = _json_kind(field.annotation)
    if kind == "boolean" and type(value) is not bool:
        return [Issue(path, "must be " + _JSON_KIND[kind])]
    if kind == "integer" and type(value) is not int:
        return [Issue(path, "must be " + _JSON_KIND[kind])]
    if kind == "number" and (type(value) is bool or not isinstance(value, int | float)):
        return [Issue(path, "must be " + _JSON_KIND[kind])]
    if kind == "string":
        if not isinstance(value, str):
            return [Issue(path, "must be a JSON string")]
        _, markers = _primitive(field.annotation)
        if "Id" in markers and len(value) > MAX_ID_LENGTH:
            return [Issue(path, f"is longer than {MAX_ID_LENGTH} characters")]
        if "Xhtml" in markers:
            if _UNSAFE_XHTML.search(value):
                return [Issue(path, "contains active content (script, handlers, frames)")]
        elif _HTML_TAG.search(value):
            return [Issue(path, "looks like it embeds HTML tags, which are not allowed")]
        extra = field.json_schema_extra
        allowed = extra.get("enum_values") if isinstance(extra, dict) else None
        # fhir.resources cuts long value sets short with a final "+": those are not checked.
        if isinstance(allowed, list) and "+" not in allowed and value not in allowed:
            return [Issue(path, "is not one of the codes of its required value set")]
    return []


def _extension_model(model: type[FHIRAbstractModel], alias: str) -> type[FHIRAbstractModel] | None:
    """The Element model of the ``_element`` sibling ``alias`` of a primitive element."""
    for name, field in model.model_fields.items():
        if name.endswith("__ext") and field.alias == alias:
            return _complex_type(field.annotation)
    return None


def _check_extension_sibling(
    sibling: type[FHIRAbstractModel], value: Any, path: str, repeating: bool
) -> list[Issue]:
    if repeating:
        if not isinstance(value, list) or not value:
            return [Issue(path, "must be a non-empty JSON array")]
        issues = []
        for index, item in enumerate(value):
            if item is None:
                continue
            if not isinstance(item, dict):
                issues.append(Issue(f"{path}[{index}]", "must be a JSON object or null"))
            else:
                issues.extend(check_json_types(sibling, item, f"{path}[{index}]"))
        return issues
    if not isinstance(value, dict):
        return [Issue(path, "must be a JSON object")]
    return check_json_types(sibling, value, path)
