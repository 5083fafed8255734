"""Parse and validate resources against FHIR R4 4.0.1; every problem is an issue with a location.

``validate_resource`` is the one entry point for every write, a client's or Billable's own.
It reports every problem in one answer:

- structure, cardinality, primitive formats, choice types, the FHIR JSON rules (no
  ``null``, empty arrays, objects or strings) and the required bindings, by a JSON Schema
  generated from the official R4 definitions (``server/spec/validation_build.py``) and
  run by a compiled validator (``jsonschema_rs``); see ``structure``;
- the core invariants that compare values or look across the resource (``ref-1``,
  ``per-1``, ``dom-2``..``dom-5``, ``obs-7``...); see ``invariants``;
- nested resources (``contained``, ``Bundle.entry.resource``, ``Parameters`` resources)
  each against its own type.

Validation only checks; the bytes stored are the client's JSON (plus ``id`` and ``meta``).
"""

from __future__ import annotations

from typing import Any

import orjson

from server.errors import FhirError, Issue
from server.spec.resources import is_resource_type
from server.validation.invariants import contained_ids, invariant_issues
from server.validation.keywords import CONTAINED_IDS
from server.validation.paths import fhirpath_of
from server.validation.structure import structure_issues

__all__ = [
    "MAX_ISSUES",
    "fhirpath_of",
    "parse_json",
    "parse_resource",
    "resource_issues",
    "validate_resource",
]

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
    issues = resource_issues(resource)
    if issues:
        raise FhirError(400, issues[:MAX_ISSUES])


def resource_issues(
    resource: Any, path: str | None = None, container: dict[str, Any] | None = None
) -> list[Issue]:
    """Every problem of one resource (and of the resources nested in it).

    ``path`` is the FHIRPath of the resource itself (its type at the top level);
    ``container`` is the resource that contains it, if it is a contained resource.
    """
    rtype = resource.get("resourceType") if isinstance(resource, dict) else None
    where = path or (rtype if isinstance(rtype, str) else "Resource")
    if not isinstance(rtype, str) or not is_resource_type(rtype):
        return [
            Issue(
                "error",
                "structure",
                f"Not a FHIR R4 resource (resourceType {rtype!r})",
                (where if path else "resourceType",),
            )
        ]
    assert isinstance(resource, dict)
    token = CONTAINED_IDS.set(contained_ids(container if container is not None else resource))
    try:
        issues = structure_issues(resource, rtype, where)
    finally:
        CONTAINED_IDS.reset(token)
    issues.extend(invariant_issues(resource, rtype, where, container))
    for inner, inner_path, inner_container in nested_resources(resource, rtype, where):
        issues.extend(resource_issues(inner, inner_path, inner_container))
    return issues


def nested_resources(
    resource: dict[str, Any], rtype: str, path: str
) -> list[tuple[Any, str, dict[str, Any] | None]]:
    """The resources inside ``resource``: R4 has them in exactly these elements."""
    out: list[tuple[Any, str, dict[str, Any] | None]] = []
    contained = resource.get("contained")
    if isinstance(contained, list):
        out.extend((inner, f"{path}.contained[{i}]", resource) for i, inner in enumerate(contained))
    if rtype == "Bundle":
        for i, entry in enumerate(_list(resource.get("entry"))):
            if not isinstance(entry, dict):
                continue
            if "resource" in entry:
                out.append((entry["resource"], f"{path}.entry[{i}].resource", None))
            response = entry.get("response")
            if isinstance(response, dict) and "outcome" in response:
                out.append((response["outcome"], f"{path}.entry[{i}].response.outcome", None))
    elif rtype == "Parameters":
        out.extend(_parameter_resources(resource.get("parameter"), f"{path}.parameter"))
    return out


def _parameter_resources(
    parameters: Any, path: str
) -> list[tuple[Any, str, dict[str, Any] | None]]:
    out: list[tuple[Any, str, dict[str, Any] | None]] = []
    for i, parameter in enumerate(_list(parameters)):
        if not isinstance(parameter, dict):
            continue
        if "resource" in parameter:
            out.append((parameter["resource"], f"{path}[{i}].resource", None))
        out.extend(_parameter_resources(parameter.get("part"), f"{path}[{i}].part"))
    return out


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
