"""Structure, cardinality, formats, JSON rules and required bindings, by the compiled R4 schema.

The schema (``server/spec/data/r4-validation.schema.json.gz``) is generated from the
official R4 StructureDefinitions and value sets by ``server/spec/validation_build.py``.
``jsonschema_rs`` compiles it once per resource type; a valid resource costs one call
into Rust. Only when it fails are the errors walked and explained: each becomes an
OperationOutcome issue with the element's FHIRPath and a message a person can act on
(the value set and its codes for a binding, the invariant's key and text...).

The schema names its own checks by definition: ``min:Claim.status`` (a required
primitive or choice), ``choice:Observation.value`` (one type only), ``bind:<path>``
(a required CodeableConcept binding), ``inv:<key>`` (an invariant) and
``json:nonblank``; an error's schema path tells which one failed.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs

from server.errors import Issue
from server.validation.keywords import KEYWORDS
from server.validation.paths import fhirpath_of

MAX_ISSUES = 100


@cache
def schema() -> dict[str, Any]:
    raw = resources.files("server.spec").joinpath("data/r4-validation.schema.json.gz").read_bytes()
    loaded: dict[str, Any] = json.loads(gzip.decompress(raw))
    return loaded


@cache
def required_bindings() -> dict[str, Any]:
    """Element path → ``{"valueSet", "codes": {system: [code]}}`` (the shipped table)."""
    raw = resources.files("server.spec").joinpath("data/r4-required-bindings.json").read_bytes()
    table: dict[str, Any] = json.loads(raw)["bindings"]
    return table


@cache
def validator(definition: str) -> Any:
    """The compiled validator of one schema definition (a resource type, a datatype...)."""
    wrapped = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "allOf": [{"$ref": f"#/definitions/{definition}"}],
        "definitions": schema()["definitions"],
    }
    # The ``regex`` crate (linear time) instead of the default fancy-regex: R4's regexes
    # need no look-around, and it is several times faster on every primitive.
    return jsonschema_rs.Draft7Validator(
        wrapped, pattern_options=jsonschema_rs.RegexOptions(), keywords=KEYWORDS
    )


def structure_issues(resource: dict[str, Any], rtype: str, path: str) -> list[Issue]:
    """Every structural problem of ``resource`` (not of the resources nested in it)."""
    check = validator(rtype)
    if check.is_valid(resource):
        return []
    issues: list[Issue] = []
    bad_values: set[tuple[str, ...]] = set()
    for error in check.iter_errors(resource):
        for issue in explain(error, path, list(error.instance_path)):
            # An empty string breaks both its type's regex and the non-blank rule: one issue.
            if issue.code == "value":
                if issue.expression in bad_values:
                    continue
                bad_values.add(issue.expression)
            issues.append(issue)
        if len(issues) >= MAX_ISSUES:
            break
    return issues


def _definition_of(schema_path: list[Any]) -> tuple[str, list[Any]]:
    """The innermost schema definition an error happened in, and the path inside it."""
    for i in range(len(schema_path) - 2, -1, -1):
        if schema_path[i] == "definitions":
            return str(schema_path[i + 1]), schema_path[i + 2 :]
    return "", schema_path


def explain(error: Any, root: str, loc: list[Any]) -> list[Issue]:
    """One ``jsonschema_rs`` error → the issues a person can act on."""
    where = fhirpath_of(root, loc)
    definition, inner = _definition_of(list(error.schema_path))
    kind = error.kind.name
    instance = error.instance
    prefix, _, name = definition.partition(":")
    if prefix == "min":
        name = name.replace("(x)", "[x]")
        element = name.rsplit(".", 1)[-1]
        return [_issue("required", f"Missing required element {name}", f"{where}.{element}")]
    if prefix == "choice":
        element = name.rsplit(".", 1)[-1]
        found = (
            sorted(k for k in instance if _is_variant(k, element))
            if isinstance(instance, dict)
            else []
        )
        return [
            _issue(
                "structure",
                f"Only one type of {element}[x] is allowed, found {', '.join(found)}",
                f"{where}.{element}[x]",
            )
        ]
    if prefix in ("bind", "inv"):
        # The error may sit deeper than the element the rule is about (``coding``...):
        # one instance step per ``properties``/``items`` step inside the rule's schema.
        depth = sum(1 for step in inner if step in ("properties", "items"))
        if depth:
            where = fhirpath_of(root, loc[: len(loc) - depth])
    if prefix == "bind":
        return [_binding_issue(name, instance, where, coded=True)]
    if prefix == "inv":
        text = schema()["x-invariants"].get(name, "")
        return [_issue("invariant", f"Constraint {name} failed: {text}", where)]
    if definition == "json:nonblank" or kind == "minLength":
        return [_issue("value", "A string must not be empty or only whitespace", where, "value")]
    if instance is None and kind in ("type", "enum", "anyOf"):
        return [_issue("structure", "null is not allowed in FHIR JSON", where)]
    if kind == "additionalProperties":
        return [
            _issue("structure", f"Unknown element '{p}'", fhirpath_of(where, [p]))
            for p in error.kind.unexpected
        ]
    if kind == "required":
        prop = error.kind.property
        element = f"{definition}.{prop}" if definition else prop
        return [_issue("required", f"Missing required element {element}", f"{where}.{prop}")]
    if kind == "minItems":
        return [_issue("structure", "An array must not be empty", where)]
    if kind == "minProperties":
        return [_issue("structure", "An object must not be empty", where)]
    if kind == "enum" and len(inner) >= 2 and inner[0] == "properties":
        return [_binding_issue(f"{definition}.{inner[1]}", instance, where, coded=False)]
    if kind == "pattern" and len(inner) >= 2 and inner[0] == "properties":
        return [_binding_issue(f"{definition}.{inner[1]}", instance, where, coded=False)]
    if kind in ("pattern", "type", "minimum", "maximum") and definition[:1].islower():
        return [_issue("value", f"{_show(instance)} is not a valid FHIR {definition}", where)]
    if kind == "anyOf" and inner[-2:] == ["items", "anyOf"] and inner[0] == "properties":
        # An item of a primitive array (which may be null): explain against its type.
        return _explain_item(definition, str(inner[1]), instance, root, loc)
    if kind == "type":
        expected = " or ".join(error.kind.types)
        return [_issue("structure", f"Wrong JSON type: expected {expected}", where)]
    return [_issue("structure", error.message[:300], where)]


def _explain_item(
    definition: str, prop: str, instance: Any, root: str, loc: list[Any]
) -> list[Any]:
    item = schema()["definitions"][definition]["properties"][prop]["items"]["anyOf"][1]
    target = item.get("$ref", "").rsplit("/", 1)[-1]
    if "enum" in item or "pattern" in item:
        return [_binding_issue(f"{definition}.{prop}", instance, fhirpath_of(root, loc), False)]
    issues: list[Issue] = []
    for error in validator(target).iter_errors(instance):
        issues.extend(explain(error, root, loc + list(error.instance_path)))
    return issues


def _binding_issue(element: str, value: Any, where: str, coded: bool) -> Issue:
    binding = required_bindings().get(element)
    if binding is None:
        return _issue("code-invalid", f"{_show(value)} is not allowed here", where)
    value_set = binding["valueSet"]
    if "codes" not in binding:
        kind = binding.get("external", "code")
        return _issue("code-invalid", f"{_show(value)} is not a valid {kind} ({value_set})", where)
    if coded:
        allowed = "; ".join(f"{s}: {', '.join(c)}" for s, c in binding["codes"].items())
        return _issue(
            "code-invalid",
            f"No coding is from the required value set {value_set} ({allowed})",
            where,
        )
    codes = sorted({c for cs in binding["codes"].values() for c in cs})
    shown = ", ".join(codes[:30]) + (", ..." if len(codes) > 30 else "")
    return _issue(
        "code-invalid",
        f"{_show(value)} is not in the required value set {value_set} ({shown})",
        where,
    )


def _issue(code: str, message: str, where: str, _kind: str = "") -> Issue:
    return Issue("error", code, message, (where,))


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_variant(key: str, stem: str) -> bool:
    key = key.removeprefix("_")
    return key.startswith(stem) and key[len(stem) : len(stem) + 1].isupper()
