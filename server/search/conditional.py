"""Criteria of conditional create/update/delete (``If-None-Exist``, ``PUT Type?...``).

The repository parses them with ``parse_conditional_search``: full FHIR search, strict.
``parse_conditional`` (below) is the older identifier-only form the bundle processor
still uses to match entries planned in the same transaction.

The subset supported by ``parse_conditional`` is ``_id`` and ``identifier`` (token
syntax, OR by comma, AND by repetition); anything else is refused with a 400 naming the
parameter rather than silently ignored, because ignoring a criterion would turn a conditional write
into an unconditional one.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qsl

from server.errors import FhirError
from server.search.parse import parse_search
from server.storage.port import MatchQuery, SearchQuery, TokenCriterion

SUPPORTED = ("_id", "identifier")
# Result parameters that do not change which resources match.
IGNORED = ("_format", "_pretty")


def split_token(value: str) -> tuple[str | None, str | None, bool]:
    """``system|code`` → (system, code, system_given) per FHIR token search syntax."""
    if "|" not in value:
        return None, value, False
    system, code = value.split("|", 1)
    return (system or None), (code or None), True


def parse_conditional(resource_type: str, query: str, what: str) -> MatchQuery:
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in IGNORED]
    if not pairs:
        raise FhirError.of(400, "invalid", f"{what} needs search criteria (e.g. identifier=...)")
    ids: list[str] | None = None
    groups: list[list[TokenCriterion]] = []
    for name, value in pairs:
        if name not in SUPPORTED:
            raise FhirError.of(
                400,
                "not-supported",
                f"{what}: search parameter {name!r} is not supported in conditional"
                f" criteria (supported: {', '.join(SUPPORTED)})",
            )
        values = [v for v in value.split(",") if v]
        if not values:
            raise FhirError.of(400, "invalid", f"{what}: parameter {name!r} has no value")
        if name == "_id":
            ids = values if ids is None else [i for i in ids if i in values]
        else:
            group = []
            for v in values:
                system, code, given = split_token(v)
                if system is None and code is None:
                    raise FhirError.of(400, "invalid", f"{what}: empty token in {name}={value}")
                group.append(TokenCriterion(name, system, code, given))
            groups.append(group)
    return MatchQuery(resource_type, ids=ids, token_groups=groups, limit=2)


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
