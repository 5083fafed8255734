"""``_summary`` and ``_elements``: trimming resources in a search result.

Summary elements come from the ``isSummary`` flags of the R4(B) models shipped with
``fhir.resources`` (``summary_element_property``); mandatory elements (min 1) are kept
for ``_summary=text`` and ``_elements``, as R4 asks. Trimmed resources carry the
``SUBSETTED`` tag.
"""

from __future__ import annotations

from functools import cache
from typing import Any

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "subsetted",
}
_ALWAYS = ("resourceType", "id", "meta")


@cache
def _element_flags(resource_type: str) -> tuple[frozenset[str], frozenset[str]]:
    """(summary elements, mandatory elements) by JSON name, choice elements expanded."""
    try:
        from fhir.resources.R4B import get_fhir_model_class

        model = get_fhir_model_class(resource_type)
    except (KeyError, ImportError, ValueError):
        return frozenset(), frozenset()
    summary: set[str] = set()
    mandatory: set[str] = set()
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if not extra.get("element_property"):
            continue
        json_name = info.alias or name
        if extra.get("summary_element_property"):
            summary.add(json_name)
        if info.is_required() or extra.get("element_required"):
            mandatory.add(json_name)
    return frozenset(summary), frozenset(mandatory)


def _tag(resource: dict[str, Any]) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    tags = list(meta.get("tag") or [])
    if not any(t.get("code") == "SUBSETTED" for t in tags if isinstance(t, dict)):
        tags.append(SUBSETTED)
    meta["tag"] = tags
    resource["meta"] = meta
    return resource


def _local_references(node: Any, found: set[str]) -> set[str]:
    """The ids of ``#id`` references anywhere under ``node``."""
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and ref.startswith("#") and len(ref) > 1:
            found.add(ref[1:])
        for key, value in node.items():
            if key != "contained":
                _local_references(value, found)
    elif isinstance(node, list):
        for value in node:
            _local_references(value, found)
    return found


def _keep(resource: dict[str, Any], names: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in resource.items():
        base = key[1:] if key.startswith("_") else key
        if key in _ALWAYS or base in names:
            out[key] = value
    contained = resource.get("contained")
    if "contained" not in out and isinstance(contained, list):
        # contained is not a summary element, but a kept element that points into it must
        # not dangle (ref-1): keep the contained resources still referred to.
        wanted = _local_references(out, set())
        kept = [c for c in contained if isinstance(c, dict) and c.get("id") in wanted]
        if kept:
            out["contained"] = kept
    return out


def shape(
    resource: dict[str, Any], summary: str | None, elements: tuple[str, ...]
) -> dict[str, Any]:
    rtype = str(resource.get("resourceType"))
    summary_names, mandatory = _element_flags(rtype)
    if summary == "true":
        return _tag(_keep(resource, set(summary_names)))
    if summary == "text":
        return _tag(_keep(resource, {"text", *mandatory}))
    if summary == "data":
        return _tag({k: v for k, v in resource.items() if k != "text"})
    if elements:
        wanted = {e.split(".", 1)[1] if e.startswith(rtype + ".") else e for e in elements}
        return _tag(_keep(resource, wanted | set(mandatory)))
    return resource
