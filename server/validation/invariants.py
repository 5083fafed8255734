"""The R4 core invariants that look across the resource, checked in Python.

- ``dom-2`` a contained resource contains none; ``dom-3`` each contained resource is
  referenced from the rest of the resource (or refers to it with ``#``); ``dom-4`` it has
  no ``meta.versionId``/``meta.lastUpdated``; ``dom-5`` no ``meta.security``;
- ``obs-7`` an Observation whose code is also a component's code has no value of its own;
- ``inv-1`` ``Task.lastModified >= Task.authoredOn``.

``per-1``, ``rng-2`` and ``ref-1`` sit anywhere (in datatypes, backbones, extensions):
they are schema keywords (``server.validation.keywords``) the compiled validator calls
only where they can fail. The rest of the invariants are in the schema itself.
"""

from __future__ import annotations

from typing import Any

import orjson

from server.errors import Issue
from server.validation.dates import compare_datetimes
from server.validation.structure import schema


def invariant_issues(
    resource: dict[str, Any], rtype: str, path: str, container: dict[str, Any] | None
) -> list[Issue]:
    issues: list[Issue] = []
    if container is not None:
        issues.extend(_contained_rules(resource, path))
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


# -- the checks ------------------------------------------------------------------------


def contained_ids(root: dict[str, Any]) -> frozenset[str]:
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
    # Any string equal to "#id" refers to it (a reference, canonical or uri); "#" alone
    # (a contained resource pointing at its container) makes every one reachable.
    raw = orjson.dumps(resource)
    if b'"#"' in raw:
        return []
    return [
        _invariant("dom-3", f"{where}.contained[{i}]")
        for i, inner in enumerate(contained)
        if isinstance(inner, dict) and orjson.dumps("#" + str(inner.get("id"))) not in raw
    ]


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
