"""The table of search cases (tests/search/fixtures.py) on the embedded store, over HTTP."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.search.conftest import ids_of
from tests.search.fixtures import CASES

STRICT = {"Prefer": "handling=strict"}


@pytest.mark.parametrize(
    ("rtype", "query", "expected"), CASES, ids=[f"{t}?{q}" for t, q, _ in CASES]
)
def test_search_returns_exactly_the_expected_ids(
    loaded: TestClient, rtype: str, query: str, expected: set[str]
) -> None:
    r = loaded.get(f"/fhir/{rtype}?{query}&_count=100", headers=STRICT)
    assert r.status_code == 200, r.text
    assert ids_of(r.json()) == expected


@pytest.mark.parametrize(
    ("rtype", "query", "expected"), CASES, ids=[f"{t}?{q}" for t, q, _ in CASES]
)
def test_post_search_matches_get(
    loaded: TestClient, rtype: str, query: str, expected: set[str]
) -> None:
    r = loaded.post(
        f"/fhir/{rtype}/_search",
        content=query.replace("+", "%2B"),
        headers={**STRICT, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200, r.text
    assert ids_of(r.json()) == expected
