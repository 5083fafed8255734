"""The values one element (a FHIRPath node) gives each kind of search parameter.

Shared by index extraction (``server.search.extract``, which turns them into rows) and
query parsing (``split_reference``): a token's (system, code) pairs, a string's texts,
a reference's (type, id, url), a date's range, a quantity's (system, code, value) and
a composite component's parts.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from server.search.fhirpath import reference_type
from server.search.registry import SearchParam
from server.search.values import MAX_INSTANT, MIN_INSTANT, BadValue, date_range, normalise_string
from server.storage.port import CompositePart

CONTACT_SYSTEMS = frozenset(("phone", "fax", "email", "pager", "url", "sms", "other"))


def token_values(node: Any) -> list[tuple[str | None, str]]:
    """(system, code) pairs a token parameter matches for one node."""
    if isinstance(node, bool):
        return [(None, "true" if node else "false")]
    if isinstance(node, str | int | float):
        return [(None, str(node))]
    if not isinstance(node, dict):
        return []
    out: list[tuple[str | None, str]] = []
    if isinstance(node.get("coding"), list):  # CodeableConcept
        for coding in node["coding"]:
            if isinstance(coding, dict) and coding.get("code") is not None:
                out.append((coding.get("system"), str(coding["code"])))
    elif "code" in node and not isinstance(node.get("code"), dict):  # Coding, Quantity
        if node["code"] is not None:
            out.append((node.get("system"), str(node["code"])))
    elif node.get("value") is not None and not isinstance(node["value"], dict):
        # Identifier (system|value); ContactPoint (value; its system is not a URI)
        system = node.get("system")
        if system in CONTACT_SYSTEMS:
            system = None
        out.append((system, str(node["value"])))
    return out


_NAME_PARTS = ("text", "family", "given", "prefix", "suffix")
_ADDRESS_PARTS = ("text", "line", "city", "district", "state", "postalCode", "country")


def string_values(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if not isinstance(node, dict):
        return []
    parts: tuple[str, ...] | None = _NAME_PARTS if ("family" in node or "given" in node) else None
    if parts is None and any(k in node for k in ("line", "city", "postalCode", "country")):
        parts = _ADDRESS_PARTS
    out: list[str] = []
    for key in parts or node.keys():
        value = node.get(key)
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list):
            out.extend(v for v in value if isinstance(v, str))
    return out


@lru_cache(maxsize=65536)
def split_reference(reference: str) -> tuple[str | None, str | None, str | None]:
    """``Patient/1`` → (Patient, 1, None); absolute URLs keep the URL as well.

    Cached: the resources of one patient repeat the same few references (the patient,
    the encounter, the practitioner and organisation)."""
    if reference.startswith("#"):
        return None, None, reference
    parts = reference.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    rtype = reference_type("/".join(parts))
    if rtype is None or len(parts) < 2:
        return None, None, reference
    absolute = "://" in reference or reference.startswith("urn:")
    return rtype, parts[-1], ("/".join(parts) if absolute else None)


def date_values(node: Any) -> list[tuple[int, int]]:
    try:
        if isinstance(node, str):
            return [date_range(node)]
        if not isinstance(node, dict):
            return []
        if "start" in node or "end" in node:  # Period
            lo = date_range(node["start"])[0] if isinstance(node.get("start"), str) else MIN_INSTANT
            hi = date_range(node["end"])[1] if isinstance(node.get("end"), str) else MAX_INSTANT
            return [(lo, hi)]
        out: list[tuple[int, int]] = []
        for event in node.get("event") or ():  # Timing
            if isinstance(event, str):
                out.append(date_range(event))
        bounds = (node.get("repeat") or {}).get("boundsPeriod")
        if isinstance(bounds, dict):
            out.extend(date_values(bounds))
        return out
    except BadValue:
        return []


def quantity_values(node: Any) -> list[tuple[str | None, str | None, float]]:
    if not isinstance(node, dict):
        return [(None, None, float(node))] if isinstance(node, int | float) else []
    value = node.get("value")
    if not isinstance(value, int | float) or isinstance(value, bool):
        out: list[tuple[str | None, str | None, float]] = []
        for bound in ("low", "high"):  # Range
            if isinstance(node.get(bound), dict):
                out.extend(quantity_values(node[bound]))
        return out
    if "currency" in node:  # Money
        return [("urn:iso:std:iso:4217", node["currency"], float(value))]
    rows = [(node.get("system"), node.get("code"), float(value))]
    if node.get("unit") and node.get("unit") != node.get("code"):
        rows.append((None, node["unit"], float(value)))
    return rows


def component_parts(param: SearchParam, node: Any) -> list[CompositePart]:
    """Index parts of one component value: (s, c, lo, hi) as ``CompositePart``."""
    out: list[CompositePart] = []
    kind = param.type
    if kind == "token":
        out.extend(CompositePart(s, code, None, None) for s, code in token_values(node))
    elif kind == "quantity":
        for system, unit, value in quantity_values(node):
            out.append(CompositePart(system, unit, value, value))
    elif kind == "number" and isinstance(node, int | float):
        out.append(CompositePart(None, None, float(node), float(node)))
    elif kind == "date":
        out.extend(CompositePart(None, None, lo, hi) for lo, hi in date_values(node))
    elif kind == "string":
        out.extend(
            CompositePart(None, normalise_string(s), None, None) for s in string_values(node)
        )
    elif kind == "reference" and isinstance(node, dict) and isinstance(node.get("reference"), str):
        rtype, rid, _ = split_reference(node["reference"])
        out.append(CompositePart(rtype, rid, None, None))
    elif kind == "uri" and isinstance(node, str):
        out.append(CompositePart(None, node, None, None))
    return out
