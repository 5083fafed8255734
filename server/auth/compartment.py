"""Membership of a resource in a patient compartment, and SMART v2 query restrictions.

The paths come from the R4 Patient CompartmentDefinition, each parameter resolved to
element paths through its SearchParameter expression (``data/patient-compartment.json``
says where it came from). Types the definition does not list are in no patient
compartment, so a ``patient/`` scope never reaches them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any


@cache
def compartment_paths() -> dict[str, tuple[tuple[str, ...], ...]]:
    raw = resources.files("server.auth").joinpath("data/patient-compartment.json").read_bytes()
    data = json.loads(raw)["resources"]
    return {rtype: tuple(tuple(p.split(".")) for p in paths) for rtype, paths in data.items()}


def in_compartment_types() -> frozenset[str]:
    return frozenset(compartment_paths()) | {"Patient"}


def _walk(value: Any, path: tuple[str, ...]) -> Iterator[Any]:
    if not path:
        yield value
        return
    if isinstance(value, list):
        for item in value:
            yield from _walk(item, path)
        return
    if isinstance(value, dict) and path[0] in value:
        yield from _walk(value[path[0]], path[1:])


def referenced_patients(resource_type: str, resource: dict[str, Any]) -> set[str]:
    """Ids of the patients whose compartment holds ``resource``."""
    found: set[str] = set()
    if resource_type == "Patient" and isinstance(resource.get("id"), str):
        found.add(resource["id"])
    for path in compartment_paths().get(resource_type, ()):
        for node in _walk(resource, path):
            items = node if isinstance(node, list) else [node]
            for ref in items:
                target = ref.get("reference") if isinstance(ref, dict) else None
                if isinstance(target, str):
                    patient = _patient_id(target)
                    if patient is not None:
                        found.add(patient)
    return found


def patient_references(value: Any) -> set[str]:
    """Ids of every patient ``value`` refers to, wherever the reference sits (contained
    resources, extensions and non-compartment elements included)."""
    found: set[str] = set()
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str):
                patient = _patient_id(ref)
                if patient is not None:
                    found.add(patient)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _patient_id(reference: str) -> str | None:
    """``Patient/1``, ``https://host/fhir/Patient/1`` or ``Patient/1/_history/2`` → ``1``."""
    parts = reference.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1]:
        return parts[-1]
    return None


def in_patient_compartment(
    resource_type: str, resource: dict[str, Any], patients: frozenset[str]
) -> bool:
    return not referenced_patients(resource_type, resource).isdisjoint(patients)


def _codes(value: Any) -> Iterator[tuple[str | None, str]]:
    """(system, code) pairs of a code, Coding, CodeableConcept or Identifier value."""
    if isinstance(value, list):
        for item in value:
            yield from _codes(item)
    elif isinstance(value, str):
        yield None, value
    elif isinstance(value, dict):
        if isinstance(value.get("coding"), list):
            yield from _codes(value["coding"])
        code = value.get("code", value.get("value"))
        if isinstance(code, str):
            system = value.get("system")
            yield (system if isinstance(system, str) else None), code


def matches_query(resource: dict[str, Any], query: tuple[tuple[str, str], ...]) -> bool:
    """Whether ``resource`` satisfies a SMART v2 scope query such as ``category=sys|code``.

    Supported: token parameters named like the element they search (``category``,
    ``code``, ``status``, ``type``, ``identifier``...), values ``code``, ``system|code``,
    ``|code`` or ``system|``, comma for OR. Anything else matches nothing (fail closed).
    """
    for name, wanted in query:
        if ":" in name or name.startswith("_"):
            return False
        element = resource.get(name)
        if element is None:
            return False
        present = list(_codes(element))
        if not any(_token_matches(present, alt) for alt in wanted.split(",")):
            return False
    return True


def _token_matches(present: list[tuple[str | None, str]], wanted: str) -> bool:
    if "|" not in wanted:
        return any(code == wanted for _, code in present)
    system, code = wanted.split("|", 1)
    for have_system, have_code in present:
        if system == "" and have_system is None and have_code == code:
            return True
        if system and have_system == system and (code == "" or have_code == code):
            return True
    return False
