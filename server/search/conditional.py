"""Criteria of conditional create/update/delete (``If-None-Exist``, ``PUT Type?...``).

The subset supported here is ``_id`` and ``identifier`` (token syntax, OR by comma,
AND by repetition); anything else is refused with a 400 naming the parameter rather
than silently ignored, because ignoring a criterion would turn a conditional write
into an unconditional one.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from server.errors import FhirError
from server.storage.port import MatchQuery, TokenCriterion

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
