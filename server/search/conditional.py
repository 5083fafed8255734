"""Criteria of conditional create/update/delete (``If-None-Exist``, ``PUT Type?...``) and
of the conditional references and ``ifNoneExist`` of bundles.

``parse_conditional_search`` parses them as full FHIR search, strictly: an unknown
parameter is refused with a 400 naming it rather than silently ignored, because ignoring
a criterion would turn a conditional write into an unconditional one. The repository
runs the search through the caller's policy (``server.repository.conditional``).
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qsl

from server.errors import FhirError
from server.search.parse import parse_search
from server.storage.port import SearchQuery

# Result parameters that do not change which resources match.
IGNORED = ("_format", "_pretty")

# Result parameters make no sense in conditional criteria; everything else is search.
_RESULT_PARAMS = (
    "_sort", "_count", "_include", "_revinclude", "_summary", "_elements", "_total",
    "_contained", "_containedType", "_cursor",
)  # fmt: skip


def parse_conditional_search(resource_type: str, query: str, what: str) -> SearchQuery:
    """Criteria of a conditional interaction as a full FHIR search (at most 2 matches).

    Any search parameter of the type works; an unknown parameter or modifier is a 400
    naming it (strict handling: ignoring it would make the write unconditional).
    """
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in IGNORED]
    if not pairs:
        raise FhirError.of(400, "invalid", f"{what} needs search criteria (e.g. identifier=...)")
    for name, _ in pairs:
        if name.split(":", 1)[0] in _RESULT_PARAMS:
            raise FhirError.of(
                400, "invalid", f"{what}: {name!r} is not a search criterion", (name,)
            )
    try:
        parsed = parse_search((resource_type,), pairs, strict=True)
    except FhirError as exc:
        issues = [replace(i, diagnostics=f"{what}: {i.diagnostics}") for i in exc.issues]
        raise FhirError(exc.status, issues, exc.headers) from exc
    return SearchQuery((resource_type,), parsed.where, count=2)
