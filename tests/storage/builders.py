"""Builders for storage tests: increasing timestamps, resource bytes, writes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from server.search.expr import And, Expr, Ids, Or, Token, TokenValue
from server.storage.port import SearchIndex, SearchQuery, Write


class TokenIndexEntry(NamedTuple):
    """One token index value (``SearchIndex.tokens`` row) of a test resource."""

    param: str
    system: str | None
    code: str


class TokenCriterion(NamedTuple):
    """``param=[system|]code`` (``system_given``: ``|code`` or ``system|code``)."""

    param: str
    system: str | None
    code: str | None
    system_given: bool


@dataclass(frozen=True)
class Criteria:
    """Current resources of one type with these ids, matching every group (each an OR)."""

    resource_type: str
    ids: Sequence[str] | None = None
    token_groups: Sequence[Sequence[TokenCriterion]] = ()
    limit: int = 2


def criteria_expr(criteria: Criteria) -> Expr | None:
    parts: list[Expr] = []
    if criteria.ids is not None:
        parts.append(Ids(tuple(criteria.ids)))
    for group in criteria.token_groups:
        tokens = [Token(c.param, (TokenValue(c.system, c.code, c.system_given),)) for c in group]
        parts.append(Or(tuple(tokens)))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else And(tuple(parts))


async def matching(store: Any, criteria: Criteria) -> list[str]:
    """Ids of the current resources ``criteria`` match, through the search port (the
    one way conditional interactions match since the identifier-only index is gone)."""
    query = SearchQuery((criteria.resource_type,), criteria_expr(criteria), count=criteria.limit)
    page = await store.search(query)
    return [v.id for v in page.versions]


class Clock:
    """Strictly increasing FHIR instants, as the repository hands them to a backend."""

    def __init__(self) -> None:
        self._t = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> str:
        self._t += timedelta(milliseconds=1)
        return self._t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def body(resource_type: str, resource_id: str, version: int, **extra: object) -> bytes:
    """The bytes a repository would store (a tiny resource with a marker of its version)."""
    fields = "".join(f',"{k}":"{v}"' for k, v in extra.items())
    return (
        f'{{"resourceType":"{resource_type}","id":"{resource_id}",'
        f'"meta":{{"versionId":"{version}"}}{fields}}}'
    ).encode()


def write(
    clock: Clock,
    resource_type: str,
    resource_id: str,
    version: int,
    *,
    deleted: bool = False,
    tokens: tuple[TokenIndexEntry, ...] = (),
    expected: int | None = None,
) -> Write:
    """Version ``version`` of a resource, expecting ``version - 1`` unless told otherwise."""
    return Write(
        resource_type=resource_type,
        id=resource_id,
        expected_version=version - 1 if expected is None else expected,
        version=version,
        last_updated=clock(),
        body=None if deleted else body(resource_type, resource_id, version),
        index=None if deleted else SearchIndex(tokens=[tuple(t) for t in tokens]),
    )
