"""Parse and validate incoming resources; every problem is an issue with a FHIRPath location.

Validation uses the ``fhir.resources`` R4B models, which match R4 for the resource types
Billable works with (see docs/decisions.md). R4 has 18 resource types that R4B dropped or
reshaped (``MedicinalProduct*``, ``Substance*`` details, the two ``*EvidenceSynthesis``);
those are validated against the official R4 JSON Schema shipped in ``server/spec/data``.
On top of the models, the JSON rules the models are lax about are checked: no empty
objects, arrays or strings, no ``null``.

Validation only checks; the bytes stored are the client's JSON (plus ``id`` and ``meta``),
never a model re-serialisation.
"""

from __future__ import annotations

import gzip
import json
import re
from functools import cache
from importlib import resources
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from server.errors import FhirError, Issue
from server.spec.resources import is_resource_type

MAX_ISSUES = 100


def parse_json(body: bytes) -> Any:
    """Bytes → JSON value, or a 400 saying where the JSON is broken."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FhirError.of(400, "structure", f"The body is not valid JSON: {exc}") from exc


def parse_resource(body: bytes) -> dict[str, Any]:
    """Bytes → a JSON object with a known ``resourceType`` (not yet validated)."""
    value = parse_json(body)
    if not isinstance(value, dict):
        raise FhirError.of(400, "structure", "The body must be a JSON object (a FHIR resource)")
    rtype = value.get("resourceType")
    if not isinstance(rtype, str):
        raise FhirError.of(400, "required", "The resource has no resourceType", ("resourceType",))
    if not is_resource_type(rtype):
        raise FhirError.of(
            400, "not-supported", f"Unknown resource type {rtype!r} (not a FHIR R4 resource type)"
        )
    return value


def validate_resource(resource: dict[str, Any]) -> None:
    """Raise a 400 ``FhirError`` listing every problem of ``resource``, each with a location."""
    rtype = resource["resourceType"]
    issues = _json_rule_issues(resource, rtype)
    issues.extend(_model_issues(resource, rtype))
    if issues:
        raise FhirError(400, issues[:MAX_ISSUES])


# What the serialised JSON shows when a rule may be broken: null, [], {}, or a string of
# nothing but whitespace. Its absence proves the resource clean without walking it; its
# presence (possibly inside a string, a false alarm) sends it to the exact walk.
_MAYBE_BROKEN = re.compile(rb'null|\[\]|\{\}|"(?:[ \t]|\\[nrt])*"')


def _json_rule_issues(value: Any, path: str) -> list[Issue]:
    """FHIR JSON forbids null, empty objects, empty arrays and empty strings."""
    if not _MAYBE_BROKEN.search(orjson.dumps(value)):
        return []
    issues: list[Issue] = []

    def walk(v: Any, p: str) -> None:
        if len(issues) >= MAX_ISSUES:
            return
        if v is None:
            issues.append(Issue("error", "structure", "null is not allowed in FHIR JSON", (p,)))
        elif isinstance(v, dict):
            if not v:
                issues.append(Issue("error", "structure", "An object must not be empty", (p,)))
            for key, item in v.items():
                walk(item, f"{p}.{key.removeprefix('_')}")
        elif isinstance(v, list):
            if not v:
                issues.append(Issue("error", "structure", "An array must not be empty", (p,)))
            for i, item in enumerate(v):
                # ``[null, "x"]`` is legal in a primitive's parallel ``_element`` array.
                if item is None and p.rsplit(".", 1)[-1] in ("given", "prefix", "suffix", "line"):
                    continue
                walk(item, f"{p}[{i}]")
        elif isinstance(v, str) and not v.strip():
            issues.append(
                Issue("error", "value", "A string must not be empty or only whitespace", (p,))
            )

    walk(value, path)
    return issues


def _model_issues(resource: dict[str, Any], rtype: str) -> list[Issue]:
    contained = resource.get("contained")
    if isinstance(contained, list):
        for i, inner in enumerate(contained):
            inner_type = inner.get("resourceType") if isinstance(inner, dict) else None
            if not isinstance(inner_type, str) or not is_resource_type(inner_type):
                return [
                    Issue(
                        "error",
                        "structure",
                        f"Contained resource has an unknown resourceType {inner_type!r}",
                        (f"{rtype}.contained[{i}]",),
                    )
                ]
    try:
        model = get_fhir_model_class(rtype)
    except (ValueError, KeyError):
        return _schema_issues(resource, rtype)
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        return [_pydantic_issue(err, rtype) for err in exc.errors()]
    except (KeyError, TypeError, ValueError) as exc:
        return [Issue("error", "structure", f"Invalid content: {exc}", (rtype,))]
    return []


def _pydantic_issue(err: Any, rtype: str) -> Issue:
    expression = fhirpath_of(rtype, err.get("loc", ()))
    message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    kind = err.get("type", "")
    if kind == "missing":
        return Issue("error", "required", "Missing required element", (expression,))
    if kind == "extra_forbidden":
        return Issue("error", "structure", "Unknown element", (expression,))
    return Issue("error", "value", message, (expression,))


def fhirpath_of(rtype: str, loc: Any) -> str:
    """``('item', 0, 'sequence')`` → ``Claim.item[0].sequence``; ``_birthDate`` → ``birthDate``."""
    path = rtype
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            name = str(part)
            if name.startswith("__") or name == "":
                continue
            path += "." + name.removeprefix("_")
    return path


@cache
def _r4_schema() -> dict[str, Any]:
    raw = resources.files("server.spec").joinpath("data/fhir.r4.schema.json.gz").read_bytes()
    schema: dict[str, Any] = json.loads(gzip.decompress(raw))
    return schema


@cache
def _schema_validator(rtype: str) -> Any:
    import jsonschema

    schema = {"$ref": f"#/definitions/{rtype}", "definitions": _r4_schema()["definitions"]}
    return jsonschema.Draft6Validator(schema)


def _schema_issues(resource: dict[str, Any], rtype: str) -> list[Issue]:
    issues = []
    for error in _schema_validator(rtype).iter_errors(resource):
        expression = fhirpath_of(rtype, error.absolute_path)
        issues.append(Issue("error", "value", error.message[:300], (expression,)))
        if len(issues) >= MAX_ISSUES:
            break
    return issues
