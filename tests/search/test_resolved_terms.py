"""Token and string criteria are resolved to term ids before a SQLite page runs.

Few ids are written into the page's SQL (one primary-key probe each); more than
``INLINE_TERMS`` stay a sub-query, so a criterion matching thousands of distinct values
(``code=system|``) never exceeds SQLite's parameter limit; none matches nothing.
"""

from __future__ import annotations

from pathlib import Path

from server.search.expr import And, Ids, Reference, RefValue, Token, TokenValue
from server.search.sql_render import INLINE_TERMS
from server.storage.port import SearchIndex, SearchQuery, Write
from server.storage.sqlite import SQLiteStore
from tests.storage.builders import Clock, body

LOINC = "http://loinc.org"
OTHER = "urn:other"


async def test_criteria_matching_none_few_or_thousands_of_terms_find_exactly_their_matches(
    tmp_path: Path,
) -> None:
    clock = Clock()
    many = INLINE_TERMS + 100
    writes = [
        Write(
            "Observation",
            f"o{i:05d}",
            0,
            1,
            clock(),
            body("Observation", f"o{i:05d}", 1),
            SearchIndex(
                tokens=[("code", LOINC if i < many else OTHER, f"c{i}")],
                references=[("patient", "Patient", "p1" if i % 2 else "p2", None)],
            ),
        )
        for i in range(many + 20)
    ]
    store = SQLiteStore(tmp_path / "billable.db")
    await store.open()
    try:
        await store.commit(writes)

        async def ids(where: object) -> list[str]:
            page = await store.search(SearchQuery(("Observation",), where, count=5000))  # type: ignore[arg-type]
            return [v.id for v in page.versions]

        every_loinc = Token("code", (TokenValue(LOINC, None, True),))
        assert await ids(every_loinc) == [f"o{i:05d}" for i in range(many)]
        p1 = Reference("patient", (RefValue(None, "p1"),))
        assert await ids(And((p1, every_loinc))) == [f"o{i:05d}" for i in range(1, many, 2)]
        two = Token("code", (TokenValue(LOINC, "c3", True), TokenValue(OTHER, f"c{many}", True)))
        assert await ids(two) == ["o00003", f"o{many:05d}"]
        assert await ids(And((p1, two))) == ["o00003"]
        nothing = Token("code", (TokenValue(LOINC, "no-such-code", True),))
        assert await ids(nothing) == []
        assert await ids(And((p1, nothing))) == []
    finally:
        await store.close()


async def test_an_empty_id_set_driving_a_narrowed_search_finds_nothing_instead_of_failing(
    tmp_path: Path,
) -> None:
    """``_id`` with no ids (what a patient token's compartment can leave) drives the
    query; an index-only term then narrows it by row id. The empty driver must still
    name its column ``seq`` (it once said ``NULL``: "no such column" and a 503)."""
    clock = Clock()
    writes = [
        Write(
            "Observation",
            "o1",
            0,
            1,
            clock(),
            body("Observation", "o1", 1),
            SearchIndex(tokens=[("code", LOINC, "c1")]),
        )
    ]
    store = SQLiteStore(tmp_path / "billable.db")
    await store.open()
    try:
        await store.commit(writes)
        code = Token("code", (TokenValue(LOINC, "c1", True),))
        page = await store.search(SearchQuery(("Observation",), And((Ids(()), code))))
        assert page.versions == []
        page = await store.search(SearchQuery(("Observation",), And((Ids(("o1",)), code))))
        assert [v.id for v in page.versions] == ["o1"]
    finally:
        await store.close()
