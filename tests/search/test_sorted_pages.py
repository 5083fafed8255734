"""Pages of a date-sorted search are the full sort's pages, whichever plan reads them.

Over many matches (``ORDERED_SCAN_FROM`` or more), the SQLite store reads a
``_sort=date``/``_sort=-date`` page by walking the date index in key order and stops at
the page's end (``server/storage/sqlite_search.py``: ``walk``); with fewer, it hands
the page the ids it already read (``known``). Either way every page must equal the
one a complete sort gives: the key of a resource is its latest date (``-date``) or its
earliest (``date``), resources without one come last, ties are broken by id, and
paging forwards or backwards never repeats or skips a match. The expected order is
computed here in Python from the index rows written, independently of the SQL.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.search.expr import And, Expr, Ids, Reference, RefValue, Token, TokenValue
from server.storage.port import SearchIndex, SearchQuery, SortKey, Write
from server.storage.sqlite import SQLiteStore
from server.storage.sqlite_search import ORDERED_SCAN_FROM, plan_page, walk
from tests.storage.builders import Clock, body

LOINC = "http://loinc.org"
DAY = 86_400_000_000  # microseconds
MANY = ORDERED_SCAN_FROM + 400  # patient "big": enough for the walk
FEW = 150  # patient "small": fewer, so its ids are read once and handed to the page


def _dates(i: int) -> list[tuple[str, int, int]]:
    """The ``date`` rows of Observation ``i``: tied in groups of 37 (as the vitals of one
    encounter are), some periods, some with two dates, some without any."""
    if i % 53 == 0:
        return []  # no effective date: sorts last either way
    day = (i * 7) % 97  # 97 distinct days, each shared by ~27 resources
    lo = day * DAY
    rows = [("date", lo, lo + (DAY // 2 if i % 5 == 0 else 0))]
    if i % 41 == 0:  # a second value far from the first: its key is the extreme one
        rows.append(("date", lo + 150 * DAY, lo + 150 * DAY))
    return rows


def _write(clock: Clock, rid: str, patient: str, code: str, dates: list) -> Write:
    return Write(
        "Observation",
        rid,
        0,
        1,
        clock(),
        body("Observation", rid, 1),
        SearchIndex(
            tokens=[("code", LOINC, code)],
            references=[("patient", "Patient", patient, None)],
            dates=dates,
        ),
    )


class Population:
    """Observations of two patients, and the key of each (``None``: no date)."""

    def __init__(self) -> None:
        clock = Clock()
        self.writes: list[Write] = []
        self.dates: dict[str, list[tuple[str, int, int]]] = {}
        self.patient: dict[str, str] = {}
        self.code: dict[str, str] = {}
        # Written in an order unrelated to ids and dates.
        for i in sorted(range(MANY + FEW), key=lambda i: (i * 7919) % (MANY + FEW)):
            rid = f"obs-{(i * 104729) % 100003:06d}"
            patient = "big" if i < MANY else "small"
            code = "8867-4" if i % 3 else "8310-5"
            dates = _dates(i)
            self.writes.append(_write(clock, rid, patient, code, dates))
            self.dates[rid], self.patient[rid], self.code[rid] = dates, patient, code

    def expected(self, descending: bool, keep: dict[str, str]) -> list[str]:
        """Every match of ``keep`` (param -> value) in the full sort's order."""
        chosen = [
            rid
            for rid in self.dates
            if all(
                (self.patient if p == "patient" else self.code)[rid] == v for p, v in keep.items()
            )
        ]
        keyed = [r for r in chosen if self.dates[r]]
        missing = sorted(r for r in chosen if not self.dates[r])
        if descending:
            keyed.sort(key=lambda r: (-max(hi for _, _, hi in self.dates[r]), r))
        else:
            keyed.sort(key=lambda r: (min(lo for _, lo, _ in self.dates[r]), r))
        return keyed + missing


def _where(keep: dict[str, str]) -> Expr | None:
    parts: list[Expr] = []
    if "patient" in keep:
        parts.append(Reference("patient", (RefValue(None, keep["patient"]),)))
    if "code" in keep:
        parts.append(Token("code", (TokenValue(LOINC, keep["code"], True),)))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else And(tuple(parts))


@pytest.fixture(scope="module")
def population() -> Population:
    return Population()


@pytest.fixture(scope="module")
def stored(population: Population, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The population written once into an SQLite file (each test opens its own store)."""
    path = tmp_path_factory.mktemp("sorted") / "billable.db"

    async def write() -> None:
        s = SQLiteStore(path)
        await s.open()
        try:
            await s.commit(population.writes)
        finally:
            await s.close()

    asyncio.run(write())
    return path


@pytest.fixture
async def store(stored: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(stored)
    await s.open()
    yield s
    await s.close()


def _query(keep: dict[str, str], descending: bool, count: int, **position: object) -> SearchQuery:
    return SearchQuery(
        ("Observation",),
        _where(keep),
        (SortKey("date", "date", descending),),
        count,
        **position,  # type: ignore[arg-type]
    )


async def _forwards(store: SQLiteStore, keep: dict[str, str], descending: bool, count: int):
    ids: list[str] = []
    pages: list[list[tuple]] = []
    after = None
    while True:
        page = await store.search(_query(keep, descending, count, after=after))
        ids += [v.id for v in page.versions]
        pages.append(page.positions)
        if not page.more:
            return ids, pages
        after = page.positions[-1]


CASES = [
    ({"patient": "big"}, True),
    ({"patient": "big"}, False),
    ({}, True),  # no criteria: the type's whole date index
    ({"patient": "big", "code": "8867-4"}, True),  # narrowed driver, still many
    ({"patient": "small"}, True),  # few: the ids are read once
    ({"patient": "big", "code": "8310-5"}, False),
]
# Another page size, so that page ends fall elsewhere in the tied groups.
ODD = [({"patient": "big"}, True, 33), ({}, False, 33)]


@pytest.mark.parametrize(("keep", "descending"), CASES, ids=[f"{k}-{d}" for k, d in CASES])
@pytest.mark.parametrize("count", [20])
async def test_every_page_of_a_date_sort_equals_the_full_sort_with_ties_broken_by_id(
    store: SQLiteStore,
    population: Population,
    keep: dict[str, str],
    descending: bool,
    count: int,
) -> None:
    ids, _ = await _forwards(store, keep, descending, count)
    assert ids == population.expected(descending, keep)


@pytest.mark.parametrize(("keep", "descending", "count"), ODD, ids=[f"{k}-{d}" for k, d, _ in ODD])
async def test_pages_of_another_size_also_equal_the_full_sort(
    store: SQLiteStore,
    population: Population,
    keep: dict[str, str],
    descending: bool,
    count: int,
) -> None:
    ids, _ = await _forwards(store, keep, descending, count)
    assert ids == population.expected(descending, keep)


@pytest.mark.parametrize(
    ("keep", "descending"), CASES[1:3], ids=[f"{k}-{d}" for k, d in CASES[1:3]]
)
async def test_previous_pages_of_a_date_sort_mirror_its_next_pages(
    store: SQLiteStore, keep: dict[str, str], descending: bool
) -> None:
    _, pages = await _forwards(store, keep, descending, 25)
    # From the last page, walk back with each page's first position.
    before = pages[-1][0]
    for expected in reversed(pages[:-1]):
        page = await store.search(_query(keep, descending, 25, before=before))
        assert page.positions == expected
        before = page.positions[0]


async def test_a_large_date_sorted_match_is_walked_from_the_date_index(
    store: SQLiteStore, population: Population
) -> None:
    """Not vacuous: the walk itself finds the first page's candidates."""
    conn = sqlite3.connect(store.path)
    try:
        for keep in ({"patient": "big"}, {}):
            query = _query(keep, True, 20)
            page, try_walk = plan_page(conn, query)
            assert try_walk
            candidates = walk(conn, query, page.probe)
            assert candidates is not None
            first = population.expected(True, keep)[:21]
            walked = conn.execute(
                "SELECT v.id FROM resource_versions v JOIN json_each(?) j ON j.value = v.seq",
                [candidates],
            ).fetchall()
            assert set(first) <= {row[0] for row in walked}
        # Few matches are not walked: their ids are handed to the page.
        page, try_walk = plan_page(conn, _query({"patient": "small"}, True, 20))
        assert not try_walk and "json_each" in page.text
    finally:
        conn.close()


async def test_a_resource_whose_key_lies_before_the_cursor_is_never_repeated_on_later_pages(
    store: SQLiteStore, population: Population
) -> None:
    """Resources with two dates have a row on either side of many cursors: the walk of a
    next page meets their earlier row, which must not bring them back."""
    twice = [
        r for r, d in population.dates.items() if len(d) == 2 and population.patient[r] == "big"
    ]
    assert len(twice) > 10
    ids, _ = await _forwards(store, {"patient": "big"}, True, 20)
    assert len(ids) == len(set(ids))
    assert set(twice) <= set(ids)


async def test_a_date_sorted_total_counts_every_match_not_the_walked_candidates(
    store: SQLiteStore, population: Population
) -> None:
    query = SearchQuery(
        ("Observation",),
        _where({"patient": "big"}),
        (SortKey("date", "date", True),),
        20,
        total=True,
    )
    page = await store.search(query)
    assert page.total == MANY
    assert [v.id for v in page.versions] == population.expected(True, {"patient": "big"})[:20]


async def test_default_order_pages_of_a_large_driver_narrowed_by_another_term_are_in_id_order(
    store: SQLiteStore, population: Population
) -> None:
    """``patient`` matches more than ``ORDERED_SCAN_FROM``, with the code fewer: the page is
    handed the narrowed ids (it no longer walks every Observation in id order), and an
    ``_id`` term, which reads the row, still applies on top."""
    keep = {"patient": "big", "code": "8310-5"}
    expected = sorted(population.expected(True, keep))
    assert ORDERED_SCAN_FROM > len(expected) > 100
    ids: list[str] = []
    after = None
    while True:
        page = await store.search(
            SearchQuery(("Observation",), _where(keep), count=40, after=after)
        )
        ids += [v.id for v in page.versions]
        if not page.more:
            break
        after = page.positions[-1]
    assert ids == expected
    some = tuple(expected[::7])
    where = And((_where(keep), Ids(some)))  # type: ignore[arg-type]
    page = await store.search(SearchQuery(("Observation",), where, count=1000))
    assert [v.id for v in page.versions] == sorted(some)
