"""The R4 core invariants JSON Schema cannot say: they compare values or span the resource.

- ``ref-1`` a local reference ``#id`` names a contained resource of the root resource;
- ``per-1`` ``Period.start <= Period.end``; ``rng-2`` ``Range.low <= Range.high``;
- ``dom-2`` a contained resource contains none; ``dom-3`` each contained resource is
  referenced from the rest of the resource (or refers to it with ``#``); ``dom-4`` it has
  no ``meta.versionId``/``meta.lastUpdated``; ``dom-5`` no ``meta.security``;
- ``obs-7`` an Observation whose code is also a component's code has no value of its own;
- ``inv-1`` ``Task.lastModified >= Task.authoredOn``.

Periods, Ranges and References sit anywhere (inside datatypes, backbones, extensions),
so they are found by walking the resource along the schema's type graph; the walk runs
only when the resource's JSON holds the key that could break the rule (``"end"``,
``"high"``, a ``"#`` reference), which most resources do not.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

import orjson

from server.errors import Issue
from server.validation.structure import schema

TARGETS = ("Period", "Range", "Reference")


def invariant_issues(
    resource: dict[str, Any], rtype: str, path: str, container: dict[str, Any] | None
) -> list[Issue]:
    issues: list[Issue] = []
    if container is not None:
        issues.extend(_contained_rules(resource, path))
    raw = orjson.dumps(resource)
    wanted = set()
    if b'"end":' in raw:
        wanted.add("Period")
    if b'"high":' in raw:
        wanted.add("Range")
    if b'"reference":"#' in raw:
        wanted.add("Reference")
    if wanted:
        root = container if container is not None else resource
        ids = _contained_ids(root)
        for kind, value, where in _find(resource, rtype, path, frozenset(wanted)):
            issue = _CHECKS[kind](value, where, ids)
            if issue is not None:
                issues.append(issue)
    if "contained" in resource and container is None:
        issues.extend(_dom3(resource, path))
    if rtype == "Observation":
        issues.extend(_obs7(resource, path))
    elif rtype == "Task":
        issues.extend(_task_inv1(resource, path))
    return issues


def _invariant(key: str, where: str) -> Issue:
    text = schema()["x-invariants"].get(key, "")
    return Issue("error", "invariant", f"Constraint {key} failed: {text}", (where,))


# -- walking along the type graph ------------------------------------------------------


@cache
def _graph() -> dict[str, dict[str, str]]:
    """Definition → {JSON property → definition of its value} for complex properties."""
    graph: dict[str, dict[str, str]] = {}
    for name, d in schema()["definitions"].items():
        props = d.get("properties")
        if not props or ":" in name:
            continue
        edges = {}
        for prop, sub in props.items():
            target = _target(sub.get("items", sub))
            if target and not target[:1].islower() and target != "Resource":
                edges[prop] = target
        graph[name] = edges
    return graph


def _target(sub: dict[str, Any]) -> str | None:
    if "anyOf" in sub:
        sub = sub["anyOf"][-1]
    if "allOf" in sub and "$ref" not in sub:
        sub = sub["allOf"][0]
    ref = sub.get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


@cache
def _reaches(targets: frozenset[str]) -> frozenset[str]:
    """Definitions from which one of ``targets`` can be reached (themselves included)."""
    graph = _graph()
    found = set(targets)
    changed = True
    while changed:
        changed = False
        for name, edges in graph.items():
            if name not in found and any(t in found for t in edges.values()):
                found.add(name)
                changed = True
    return frozenset(found)


@cache
def _pruned(targets: frozenset[str]) -> dict[str, dict[str, str]]:
    """The type graph cut down to the edges that lead to one of ``targets``."""
    reach = _reaches(targets)
    return {
        name: {prop: t for prop, t in edges.items() if t in reach}
        for name, edges in _graph().items()
        if name in reach
    }


def _find(
    value: dict[str, Any], definition: str, where: str, targets: frozenset[str]
) -> list[tuple[str, Any, str]]:
    found: list[tuple[str, Any, str]] = []
    graph = _pruned(targets)

    def walk(node: Any, d: str, p: str) -> None:
        if not isinstance(node, dict):
            return
        if d in targets:
            found.append((d, node, p))
        edges = graph.get(d)
        if not edges:
            return
        for prop, sub in node.items():
            target = edges.get(prop)
            if target is None:
                continue
            if isinstance(sub, list):
                for i, item in enumerate(sub):
                    walk(item, target, f"{p}.{prop}[{i}]")
            else:
                walk(sub, target, f"{p}.{prop}")

    walk(value, definition, where)
    return found


# -- the checks ------------------------------------------------------------------------


def _ref1(value: dict[str, Any], where: str, ids: frozenset[str]) -> Issue | None:
    ref = value.get("reference")
    if isinstance(ref, str) and ref.startswith("#") and ref != "#" and ref[1:] not in ids:
        return _invariant("ref-1", where)
    return None


def _per1(value: dict[str, Any], where: str, _ids: frozenset[str]) -> Issue | None:
    if compare_datetimes(value.get("start"), value.get("end")) == 1:
        return _invariant("per-1", where)
    return None


def _rng2(value: dict[str, Any], where: str, _ids: frozenset[str]) -> Issue | None:
    low, high = value.get("low"), value.get("high")
    if not isinstance(low, dict) or not isinstance(high, dict):
        return None
    if (low.get("system"), low.get("code")) != (high.get("system"), high.get("code")):
        return None  # different units: not comparable without UCUM conversion
    try:
        if Decimal(str(low["value"])) > Decimal(str(high["value"])):
            return _invariant("rng-2", where)
    except (KeyError, InvalidOperation):
        return None
    return None


_CHECKS = {"Reference": _ref1, "Period": _per1, "Range": _rng2}


def _contained_ids(root: dict[str, Any]) -> frozenset[str]:
    contained = root.get("contained")
    if not isinstance(contained, list):
        return frozenset()
    return frozenset(c["id"] for c in contained if isinstance(c, dict) and "id" in c)


def _contained_rules(resource: dict[str, Any], where: str) -> list[Issue]:
    issues = []
    if "contained" in resource:
        issues.append(_invariant("dom-2", where))
    meta = resource.get("meta")
    if isinstance(meta, dict):
        if "versionId" in meta or "lastUpdated" in meta:
            issues.append(_invariant("dom-4", where))
        if "security" in meta:
            issues.append(_invariant("dom-5", where))
    return issues


def _dom3(resource: dict[str, Any], where: str) -> list[Issue]:
    contained = resource.get("contained")
    if not isinstance(contained, list):
        return []
    strings: set[str] = set()
    _strings(resource, strings)
    if "#" in strings:  # a contained resource refers to its container: all are reachable
        return []
    return [
        _invariant("dom-3", f"{where}.contained[{i}]")
        for i, inner in enumerate(contained)
        if isinstance(inner, dict) and f"#{inner.get('id')}" not in strings
    ]


def _strings(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str):
                if key != "id" and value.startswith("#"):
                    out.add(value)
            else:
                _strings(value, out)
    elif isinstance(node, list):
        for value in node:
            if isinstance(value, str):
                if value.startswith("#"):
                    out.add(value)
            else:
                _strings(value, out)


def _codings(concept: Any) -> set[tuple[Any, Any]]:
    if not isinstance(concept, dict):
        return set()
    return {
        (c.get("system"), c.get("code")) for c in concept.get("coding", []) if isinstance(c, dict)
    }


def _obs7(obs: dict[str, Any], where: str) -> list[Issue]:
    if not any(_is_value(k) for k in obs):
        return []
    own = _codings(obs.get("code"))
    components = obs.get("component")
    if not own or not isinstance(components, list):
        return []
    for component in components:
        if isinstance(component, dict) and own & _codings(component.get("code")):
            return [_invariant("obs-7", where)]
    return []


def _is_value(key: str) -> bool:
    key = key.removeprefix("_")
    return key.startswith("value") and key[5:6].isupper()


def _task_inv1(task: dict[str, Any], where: str) -> list[Issue]:
    if compare_datetimes(task.get("authoredOn"), task.get("lastModified")) == 1:
        return [_invariant("inv-1", where)]
    return []


# -- FHIR date/time comparison ---------------------------------------------------------

_DATETIME = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def _parts(value: Any) -> tuple[int, ...] | None:
    """A FHIR date/dateTime/instant → comparable parts, as precise as it is given.

    A value with a time is normalised to UTC (FHIR requires a zone with a time).
    """
    if not isinstance(value, str):
        return None
    m = _DATETIME.match(value)
    if not m:
        return None
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    if hour is None:
        return tuple(int(p) for p in (year, month, day) if p is not None)
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    stamp = f"{year}-{month}-{day}T{hour}:{minute}:{second or '00'}{zone or '+00:00'}"
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    utc = moment.astimezone(UTC).utctimetuple()
    return (utc.tm_year, utc.tm_mon, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, micro)


def compare_datetimes(a: Any, b: Any) -> int | None:
    """-1, 0, 1 as FHIRPath compares two date/times, ``None`` when it cannot say.

    Values of different precision are compared on the parts both have; equal there,
    the answer is unknown (FHIRPath's empty), which never fails an invariant.
    """
    if isinstance(a, str) and isinstance(b, str) and len(a) == len(b):
        # Same shape (precision, fraction digits, zone): ISO 8601 text sorts by time.
        if len(a) <= 10 or (a[-1] == b[-1] == "Z") or (a[-6] in "+-" and a[-6:] == b[-6:]):
            return (a > b) - (a < b)
    pa, pb = _parts(a), _parts(b)
    if pa is None or pb is None:
        return None
    n = min(len(pa), len(pb))
    head_a, head_b = pa[:n], pb[:n]
    if head_a != head_b:
        return -1 if head_a < head_b else 1
    return 0 if len(pa) == len(pb) else None
