"""The SQLite page query changes plan with the driver's size, never its answer.

A driver matching fewer than ``ORDERED_SCAN_FROM`` resources is materialised and sorted;
one matching more is read by walking the type in id order and probing each resource
(``server/storage/sqlite_search.py``). Both must give the same pages.
"""

from __future__ import annotations

from pathlib import Path

from server.search.expr import And, Token, TokenValue
from server.storage.port import SearchIndex, SearchQuery, Write
from server.storage.sqlite import SQLiteStore
from server.storage.sqlite_search import ORDERED_SCAN_FROM, render_search
from tests.storage.builders import Clock, body

LOINC = "http://loinc.org"


def _observation(clock: Clock, i: int, code: str, status: str) -> Write:
    rid = f"o{i:05d}"
    return Write(
        "Observation",
        rid,
        0,
        1,
        clock(),
        body("Observation", rid, 1),
        SearchIndex(tokens=[("code", LOINC, code), ("status", None, status)]),
    )


async def _all_pages(store: SQLiteStore, where: And | Token) -> list[str]:
    ids: list[str] = []
    after = None
    while True:
        page = await store.search(SearchQuery(("Observation",), where, count=300, after=after))
        ids += [v.id for v in page.versions]
        if not page.more:
            return ids
        after = page.positions[-1]


async def test_a_large_and_a_small_driver_page_in_id_order_without_gaps_or_repeats(
    tmp_path: Path,
) -> None:
    clock = Clock()
    many = ORDERED_SCAN_FROM + 500
    # Written in an order unrelated to the ids, so insertion order is no help.
    order = sorted(range(many + 40), key=lambda i: (i * 7919) % (many + 40))
    writes = [
        _observation(clock, i, "many" if i < many else "few", "final" if i % 3 else "amended")
        for i in order
    ]
    store = SQLiteStore(tmp_path / "billable.db")
    await store.open()
    try:
        await store.commit(writes)
        big = Token("code", (TokenValue(LOINC, "many", True),))
        small = Token("code", (TokenValue(LOINC, "few", True),))
        final = Token("status", (TokenValue(None, "final", False),))

        everything = await _all_pages(store, big)
        assert everything == [f"o{i:05d}" for i in range(many)]
        final_many = await _all_pages(store, And((big, final)))
        assert final_many == [f"o{i:05d}" for i in range(many) if i % 3]
        few = await _all_pages(store, And((small, final)))
        assert few == [f"o{i:05d}" for i in range(many, many + 40) if i % 3]
    finally:
        await store.close()


def test_only_a_default_order_or_a_date_sort_offers_an_index_ordered_plan() -> None:
    from server.storage.port import SortKey

    code = Token("code", (TokenValue(LOINC, "x", True),))
    assert render_search(SearchQuery(("Observation",), code))[3] is not None
    # A date sort may be walked from its date index (tests/search/test_sorted_pages.py).
    by_date = SearchQuery(("Observation",), code, sort=(SortKey("date", "date", True),))
    assert render_search(by_date)[3] is not None
    by_status = SearchQuery(("Observation",), code, sort=(SortKey("status", "token", False),))
    assert render_search(by_status)[3] is None


async def test_has_over_thousands_of_referrers_finds_exactly_the_referenced_patients(
    tmp_path: Path,
) -> None:
    from server.search.expr import Has

    clock = Clock()
    patients = [
        Write("Patient", f"p{i:03d}", 0, 1, clock(), body("Patient", f"p{i:03d}", 1), SearchIndex())
        for i in range(60)
    ]
    referrers = []
    for i in range(ORDERED_SCAN_FROM + 100):  # only the even patients are referenced
        rid = f"o{i:05d}"
        referrers.append(
            Write(
                "Observation",
                rid,
                0,
                1,
                clock(),
                body("Observation", rid, 1),
                SearchIndex(
                    tokens=[("code", LOINC, "many")],
                    references=[("subject", "Patient", f"p{(i % 30) * 2:03d}", None)],
                ),
            )
        )
    store = SQLiteStore(tmp_path / "billable.db")
    await store.open()
    try:
        await store.commit(patients + referrers)
        has = Has("Observation", "subject", Token("code", (TokenValue(LOINC, "many", True),)))
        page = await store.search(SearchQuery(("Patient",), has, count=100))
        assert [v.id for v in page.versions] == [f"p{i:03d}" for i in range(0, 60, 2)]
    finally:
        await store.close()
