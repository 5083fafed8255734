"""Kick-off parameters of ``$export``: validated once, stored with the job as plain data.

GET query parameters and the ``Parameters`` body of a POST kick-off become the same
``ExportRequest``. Unknown or unsupported parameters are a 400 unless the client sent
``Prefer: handling=lenient`` (Bulk Data IG v2), in which case they are ignored.
``_typeFilter`` queries are parsed with the FHIR search parser (strictly) so that a bad
query fails the kick-off rather than the job; the job stores the query text and parses it
again when it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from server.api.history import normalise_instant
from server.errors import FhirError
from server.search.parse import parse_search
from server.search.registry import registry
from server.spec.resources import is_resource_type, resource_types

NDJSON = "application/fhir+ndjson"
OUTPUT_FORMATS = frozenset({NDJSON, "application/ndjson", "ndjson"})
# Search result parameters make no sense inside a _typeFilter query.
RESULT_PARAMS = frozenset(
    {"_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total", "_cursor"}
)
KNOWN = frozenset({"_outputFormat", "_since", "_type", "_typeFilter"})
UNSUPPORTED = frozenset({"_elements", "patient", "includeAssociatedData", "_until"})


@dataclass(slots=True)
class ExportRequest:
    level: str  # "system" | "patient" | "group"
    group_id: str | None = None
    types: tuple[str, ...] | None = None  # None: every type the token may export
    since: str | None = None  # normalised instant
    type_filters: dict[str, list[str]] = field(default_factory=dict)
    output_format: str = NDJSON


def bad(message: str) -> FhirError:
    return FhirError.of(400, "invalid", message)


def patient_compartment_types() -> tuple[str, ...]:
    """Patient plus every type the R4 Patient CompartmentDefinition lists."""
    reg = registry()
    found = [t for t in resource_types() if t == "Patient" or reg.compartment_params("Patient", t)]
    return tuple(sorted(found))


def parameters_to_pairs(body: Any) -> list[tuple[str, str]]:
    """A POST kick-off ``Parameters`` resource → (name, value) pairs like a query string."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise bad("A POST $export kick-off takes a Parameters resource")
    pairs: list[tuple[str, str]] = []
    parameters = body.get("parameter") or []
    if not isinstance(parameters, list):
        raise bad("Parameters.parameter must be an array of parameters")
    for param in parameters:
        if not isinstance(param, dict) or not isinstance(param.get("name"), str):
            raise bad("Each Parameters.parameter needs a name")
        value = None
        for key, item in param.items():
            if key.startswith("value"):
                if isinstance(item, dict) and isinstance(item.get("reference"), str):
                    value = item["reference"]
                elif isinstance(item, str | int | float | bool):
                    value = item if isinstance(item, str) else str(item).lower()
                else:
                    raise bad(
                        f"Parameter {param['name']!r}: value[x] must be a primitive or a Reference"
                    )
        if value is None:
            raise bad(f"Parameter {param['name']!r} has no value[x]")
        pairs.append((param["name"], value))
    return pairs


def parse_kickoff(
    pairs: list[tuple[str, str]],
    level: str,
    group_id: str | None = None,
    lenient: bool = False,
    base_url: str | None = None,
) -> ExportRequest:
    request = ExportRequest(level=level, group_id=group_id)
    types: list[str] = []
    filters: list[str] = []
    for name, value in pairs:
        if name in ("_format", "_pretty"):
            continue
        if name not in KNOWN:
            if lenient:
                continue
            what = "not supported" if name in UNSUPPORTED else "not a $export parameter"
            raise bad(f"{name!r} is {what} (send Prefer: handling=lenient to ignore it)")
        if name == "_outputFormat":
            value = value.strip().replace(" ", "+")  # an unencoded "+" in a URL decodes as " "
            if value not in OUTPUT_FORMATS:
                raise bad(
                    f"_outputFormat {value!r} is not supported; use {NDJSON}"
                    " (or application/ndjson, ndjson)"
                )
            request.output_format = NDJSON
        elif name == "_since":
            request.since = normalise_instant(value, "_since")
        elif name == "_type":
            for item in value.split(","):
                item = item.strip()
                if not item:
                    continue
                if not is_resource_type(item):
                    raise bad(f"_type: {item!r} is not a resource type")
                types.append(item)
        else:
            filters.append(value)
    if types:
        request.types = tuple(dict.fromkeys(types))
    if level != "system":
        allowed = set(patient_compartment_types())
        if request.types is not None:
            outside = [t for t in request.types if t not in allowed]
            if outside and not lenient:
                raise bad(
                    f"_type: {', '.join(outside)} not in the Patient compartment; a"
                    f" {level}-level export covers Patient compartment types only"
                )
            request.types = tuple(t for t in request.types if t in allowed)
    for text in filters:
        rtype, query = _parse_type_filter(text, base_url)
        if request.types is not None and rtype not in request.types:
            if lenient:
                continue
            raise bad(f"_typeFilter {text!r}: {rtype} is not one of the types in _type")
        request.type_filters.setdefault(rtype, []).append(query)
    return request


def _parse_type_filter(text: str, base_url: str | None) -> tuple[str, str]:
    rtype, sep, query = text.partition("?")
    if not sep or not is_resource_type(rtype):
        raise bad(f"_typeFilter {text!r} is not of the form Type?search-parameters")
    pairs = parse_qsl(query, keep_blank_values=True)
    if not pairs:
        raise bad(f"_typeFilter {text!r} has no search parameters")
    for name, _value in pairs:
        if name.split(":", 1)[0] in RESULT_PARAMS:
            raise bad(f"_typeFilter {text!r}: {name} is not allowed in a _typeFilter query")
    parse_search((rtype,), pairs, base_url=base_url, strict=True)  # 400 on any problem
    return rtype, query
