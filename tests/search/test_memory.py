"""The in-memory matcher agrees with the table of cases (chains and _has excepted)."""

from __future__ import annotations

import pytest

from server.search.expr import Chain, Expr, Has
from server.search.extract import extract_index_values
from server.search.memory import UnsupportedInMemory, matches
from server.search.parse import parse_search
from tests.search.fixtures import CASES, RESOURCES


def _joins(e: Expr | None) -> bool:
    if isinstance(e, Chain | Has):
        return True
    return any(_joins(x) for x in getattr(e, "exprs", ()))


@pytest.mark.parametrize(
    ("rtype", "query", "expected"), CASES, ids=[f"{t}?{q}" for t, q, _ in CASES]
)
def test_in_memory_matching_agrees_with_the_backends(
    rtype: str, query: str, expected: set[str]
) -> None:
    from urllib.parse import parse_qsl

    parsed = parse_search(
        (rtype,), parse_qsl(query), base_url="http://testserver/fhir", strict=True
    )
    if _joins(parsed.where):
        with pytest.raises(UnsupportedInMemory):
            for r in RESOURCES:
                if r["resourceType"] == rtype:
                    matches(parsed.where, r["id"], extract_index_values(r, "2026-01-01T00:00:00Z"))
        return
    found = {
        r["id"]
        for r in RESOURCES
        if r["resourceType"] == rtype
        and matches(parsed.where, r["id"], extract_index_values(r, "2026-01-01T00:00:00Z"))
    }
    assert found == expected
