"""The storage contract: what every backend behind the port must do, run on each of them.

Each test gets a fresh database on one backend (see ``conftest.py``); the repository's
policy (ids, version numbers, timestamps, bytes) is played here by small builders.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from server.storage.factory import create_store
from server.storage.port import (
    HistoryQuery,
    Store,
    StoreUnavailable,
    VersionConflict,
    Write,
)
from tests.storage.builders import (
    Clock,
    Criteria,
    TokenCriterion,
    TokenIndexEntry,
    body,
    matching,
    write,
)
from tests.storage.conftest import Backend
from tests.support.ferretdb import closed_port_uri

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"


async def all_history(store: Store, query: HistoryQuery) -> list[tuple[str, str, int]]:
    """Every version the query pages through, as (type, id, version), in page order."""
    seen: list[tuple[str, str, int]] = []
    cursor: str | None = None
    while True:
        page = await store.history(
            HistoryQuery(query.resource_type, query.resource_id, query.since, query.count, cursor)
        )
        seen.extend((v.resource_type, v.id, v.version) for v in page.versions)
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


# -- create, read, vread, update, delete -----------------------------------------------


async def test_read_of_a_resource_never_stored_is_none(store: Store) -> None:
    assert await store.read("Patient", "nobody") is None
    assert await store.vread("Patient", "nobody", 1) is None


async def test_create_then_read_and_vread_return_the_exact_bytes(
    store: Store, clock: Clock
) -> None:
    w = write(clock, "Patient", "p1", 1)
    await store.commit([w])

    current = await store.read("Patient", "p1")
    assert current is not None
    assert (current.resource_type, current.id, current.version) == ("Patient", "p1", 1)
    assert current.body == w.body
    assert current.last_updated == w.last_updated
    assert current.deleted is False
    assert await store.vread("Patient", "p1", 1) == current


async def test_each_update_adds_a_version_and_old_versions_stay_readable(
    store: Store, clock: Clock
) -> None:
    for version in (1, 2, 3):
        await store.commit([write(clock, "Patient", "p1", version)])

    current = await store.read("Patient", "p1")
    assert current is not None and current.version == 3
    for version in (1, 2, 3):
        old = await store.vread("Patient", "p1", version)
        assert old is not None
        assert old.body == body("Patient", "p1", version)
    assert await store.vread("Patient", "p1", 4) is None


async def test_resources_of_different_types_with_one_id_are_distinct(
    store: Store, clock: Clock
) -> None:
    await store.commit([write(clock, "Patient", "x", 1), write(clock, "Encounter", "x", 1)])
    await store.commit([write(clock, "Encounter", "x", 2)])

    patient = await store.read("Patient", "x")
    encounter = await store.read("Encounter", "x")
    assert patient is not None and patient.version == 1
    assert encounter is not None and encounter.version == 2


async def test_delete_leaves_a_marker_version_and_recreate_continues_the_numbering(
    store: Store, clock: Clock
) -> None:
    await store.commit([write(clock, "Patient", "p1", 1)])
    await store.commit([write(clock, "Patient", "p1", 2, deleted=True)])

    marker = await store.read("Patient", "p1")
    assert marker is not None
    assert (marker.version, marker.deleted, marker.body) == (2, True, None)
    first = await store.vread("Patient", "p1", 1)
    assert first is not None and not first.deleted

    await store.commit([write(clock, "Patient", "p1", 3)])
    again = await store.read("Patient", "p1")
    assert again is not None and (again.version, again.deleted) == (3, False)
    assert again.body == body("Patient", "p1", 3)


async def test_data_survives_closing_and_reopening_the_store(
    backend: Backend, store: Store, clock: Clock
) -> None:
    await store.commit([write(clock, "Patient", "p1", 1), write(clock, "Patient", "p1", 2)])
    await store.close()

    reopened = backend.make()
    await reopened.open()
    try:
        current = await reopened.read("Patient", "p1")
        assert current is not None and current.version == 2
        assert await reopened.vread("Patient", "p1", 1) is not None
    finally:
        await reopened.close()


async def test_ping_answers_on_an_open_store(store: Store) -> None:
    await store.ping()


async def test_info_names_the_backend(backend: Backend, store: Store) -> None:
    assert store.info.kind == {"sqlite": "sqlite", "mongo": "mongodb"}[backend.name]
    assert store.info.location


# -- optimistic concurrency -------------------------------------------------------------


async def test_stale_expected_version_raises_version_conflict_and_writes_nothing(
    store: Store, clock: Clock
) -> None:
    await store.commit([write(clock, "Patient", "p1", 1)])
    await store.commit([write(clock, "Patient", "p1", 2)])

    with pytest.raises(VersionConflict) as caught:
        await store.commit([write(clock, "Patient", "p1", 2, expected=1)])

    assert (caught.value.resource_type, caught.value.resource_id) == ("Patient", "p1")
    assert (caught.value.expected, caught.value.actual) == (1, 2)
    current = await store.read("Patient", "p1")
    assert current is not None and current.version == 2
    assert current.body == body("Patient", "p1", 2)


async def test_create_of_an_existing_resource_conflicts(store: Store, clock: Clock) -> None:
    await store.commit([write(clock, "Patient", "p1", 1)])

    with pytest.raises(VersionConflict) as caught:
        await store.commit([write(clock, "Patient", "p1", 1, expected=0)])
    assert (caught.value.expected, caught.value.actual) == (0, 1)


async def test_update_of_a_resource_never_stored_conflicts(store: Store, clock: Clock) -> None:
    with pytest.raises(VersionConflict) as caught:
        await store.commit([write(clock, "Patient", "ghost", 4, expected=3)])
    assert (caught.value.expected, caught.value.actual) == (3, 0)
    assert await store.read("Patient", "ghost") is None


async def test_expecting_a_version_newer_than_the_current_one_conflicts(
    store: Store, clock: Clock
) -> None:
    await store.commit([write(clock, "Patient", "p1", 1)])

    with pytest.raises(VersionConflict):
        await store.commit([write(clock, "Patient", "p1", 3, expected=2)])
    current = await store.read("Patient", "p1")
    assert current is not None and current.version == 1


async def test_commit_of_no_writes_does_nothing(store: Store) -> None:
    await store.commit([])
    assert (await store.history(HistoryQuery())).versions == []


async def test_commit_is_all_or_nothing_when_last_write_conflicts(
    store: Store, clock: Clock
) -> None:
    code = (TokenIndexEntry("code", LOINC, "1234-5"),)
    await store.commit([write(clock, "Patient", "existing", 1, tokens=code)])
    await store.commit([write(clock, "Patient", "existing", 2, tokens=code)])
    before = await all_history(store, HistoryQuery())

    with pytest.raises(VersionConflict):
        await store.commit(
            [
                write(clock, "Patient", "new-1", 1, tokens=code),
                write(clock, "Patient", "existing", 3),  # an update that drops the token
                write(clock, "Encounter", "new-2", 1),
                write(clock, "Patient", "existing", 3, expected=1),  # stale: conflicts
            ]
        )

    assert await store.read("Patient", "new-1") is None
    assert await store.read("Encounter", "new-2") is None
    existing = await store.read("Patient", "existing")
    assert existing is not None and existing.version == 2
    assert await store.vread("Patient", "existing", 3) is None
    assert await all_history(store, HistoryQuery()) == before
    found = await matching(
        store, Criteria("Patient", token_groups=[[TokenCriterion("code", LOINC, "1234-5", True)]])
    )
    assert found == ["existing"]

    # Nothing of the failed commit blocks the next writers of the same resources.
    await store.commit(
        [
            write(clock, "Patient", "new-1", 1),
            write(clock, "Patient", "existing", 3),
            write(clock, "Encounter", "new-2", 1),
        ]
    )
    existing = await store.read("Patient", "existing")
    assert existing is not None and existing.version == 3


async def test_one_commit_may_write_several_versions_of_one_resource(
    store: Store, clock: Clock
) -> None:
    old_code = (TokenIndexEntry("code", LOINC, "old"),)
    new_code = (TokenIndexEntry("code", LOINC, "new"),)
    await store.commit(
        [
            write(clock, "Patient", "p1", 1, tokens=old_code),
            write(clock, "Patient", "p1", 2, tokens=new_code),
        ]
    )

    current = await store.read("Patient", "p1")
    assert current is not None and current.version == 2
    assert await store.vread("Patient", "p1", 1) is not None

    def by_code(code: str) -> Criteria:
        return Criteria("Patient", token_groups=[[TokenCriterion("code", None, code, False)]])

    assert await matching(store, by_code("new")) == ["p1"]
    assert await matching(store, by_code("old")) == []


def spread(n: int) -> list[float]:
    """Start delays for ``n`` concurrent writers, up to 200 ms, the same on every run."""
    rng = random.Random(n)
    return [rng.uniform(0, 0.2) for _ in range(n)]


async def read_then_write(store: Store, clock: Clock, resource_id: str, delay: float) -> bool:
    """One optimistic update: read the current version, write the next; False on conflict."""
    await asyncio.sleep(delay)  # spread the writers so that some read versions others wrote
    current = await store.read("Claim", resource_id)
    assert current is not None
    try:
        await store.commit(
            [write(clock, "Claim", resource_id, current.version + 1, expected=current.version)]
        )
    except VersionConflict:
        return False
    return True


async def test_concurrent_read_then_write_commits_lose_no_update(
    store: Store, clock: Clock
) -> None:
    await store.commit([write(clock, "Claim", "c1", 1)])

    writers = (read_then_write(store, clock, "c1", delay) for delay in spread(50))
    outcomes = await asyncio.gather(*writers)

    successes = sum(outcomes)
    assert successes >= 1
    current = await store.read("Claim", "c1")
    assert current is not None and current.version == 1 + successes
    versions = await all_history(store, HistoryQuery("Claim", "c1", count=100))
    assert [v for _, _, v in versions] == list(range(1 + successes, 0, -1))


async def test_concurrent_writers_in_two_stores_on_one_database_lose_no_update(
    backend: Backend, store: Store, clock: Clock
) -> None:
    other = backend.make()  # as another server process would
    await other.open()
    try:
        await store.commit([write(clock, "Claim", "c1", 1)])

        outcomes = await asyncio.gather(
            *(
                read_then_write(store if i % 2 else other, clock, "c1", delay)
                for i, delay in enumerate(spread(40))
            )
        )

        successes = sum(outcomes)
        for reader in (store, other):
            current = await reader.read("Claim", "c1")
            assert current is not None and current.version == 1 + successes
        versions = await all_history(other, HistoryQuery("Claim", "c1", count=100))
        assert [v for _, _, v in versions] == list(range(1 + successes, 0, -1))
    finally:
        await other.close()


# -- history ---------------------------------------------------------------------------


async def test_instance_history_lists_every_version_newest_first_including_deletes(
    store: Store, clock: Clock
) -> None:
    await store.commit([write(clock, "Patient", "p1", 1)])
    await store.commit([write(clock, "Patient", "other", 1)])
    await store.commit([write(clock, "Patient", "p1", 2)])
    await store.commit([write(clock, "Patient", "p1", 3, deleted=True)])

    page = await store.history(HistoryQuery("Patient", "p1"))

    assert [(v.version, v.deleted) for v in page.versions] == [(3, True), (2, False), (1, False)]
    assert page.versions[0].body is None
    assert page.versions[1].body == body("Patient", "p1", 2)
    assert page.next_cursor is None


async def test_type_and_system_history_cover_their_scope_newest_first(
    store: Store, clock: Clock
) -> None:
    await store.commit([write(clock, "Patient", "a", 1)])
    await store.commit([write(clock, "Encounter", "e", 1)])
    await store.commit([write(clock, "Patient", "b", 1)])
    await store.commit([write(clock, "Patient", "a", 2)])

    patients = await all_history(store, HistoryQuery("Patient"))
    everything = await all_history(store, HistoryQuery())

    assert patients == [("Patient", "a", 2), ("Patient", "b", 1), ("Patient", "a", 1)]
    assert everything == [
        ("Patient", "a", 2),
        ("Patient", "b", 1),
        ("Encounter", "e", 1),
        ("Patient", "a", 1),
    ]


async def test_history_since_is_inclusive(store: Store, clock: Clock) -> None:
    first = write(clock, "Patient", "a", 1)
    second = write(clock, "Patient", "a", 2)
    third = write(clock, "Patient", "b", 1)
    for w in (first, second, third):
        await store.commit([w])

    page = await store.history(HistoryQuery(since=second.last_updated))

    assert [(v.id, v.version) for v in page.versions] == [("b", 1), ("a", 2)]
    later = await store.history(HistoryQuery(since=clock()))
    assert later.versions == []


async def test_history_pages_by_count_with_an_opaque_cursor(store: Store, clock: Clock) -> None:
    for i in range(7):
        await store.commit([write(clock, "Observation", f"o{i}", 1)])

    first = await store.history(HistoryQuery("Observation", count=3))
    assert [v.id for v in first.versions] == ["o6", "o5", "o4"]
    assert isinstance(first.next_cursor, str)

    every = await all_history(store, HistoryQuery("Observation", count=3))
    assert [rid for _, rid, _ in every] == [f"o{i}" for i in range(6, -1, -1)]

    exact = await store.history(HistoryQuery("Observation", count=7))
    assert len(exact.versions) == 7 and exact.next_cursor is None


async def test_history_paging_has_no_duplicates_or_gaps_while_new_writes_arrive(
    store: Store, clock: Clock
) -> None:
    for i in range(10):
        await store.commit([write(clock, "Patient", f"p{i}", 1)])
    expected = [("Patient", f"p{i}", 1) for i in range(9, -1, -1)]

    seen: list[tuple[str, str, int]] = []
    page = await store.history(HistoryQuery(count=3))
    seen.extend((v.resource_type, v.id, v.version) for v in page.versions)
    n = 0
    while page.next_cursor is not None:
        # Writes arriving between pages: updates of paged and unpaged resources, creates.
        await store.commit([write(clock, "Patient", f"p{n}", 2)])
        await store.commit([write(clock, "Patient", f"new{n}", 1)])
        n += 1
        page = await store.history(HistoryQuery(count=3, cursor=page.next_cursor))
        seen.extend((v.resource_type, v.id, v.version) for v in page.versions)

    assert seen == expected


async def test_history_keeps_versions_of_one_commit_apart_when_timestamps_tie(
    store: Store, clock: Clock
) -> None:
    instant = clock()
    writes = [write(clock, "Patient", f"p{i}", 1) for i in range(5)]
    tied = [
        Write(w.resource_type, w.id, w.expected_version, w.version, instant, w.body) for w in writes
    ]
    await store.commit(tied)

    paged = await all_history(store, HistoryQuery(count=2))
    assert sorted(paged) == sorted(("Patient", f"p{i}", 1) for i in range(5))


async def test_history_of_an_unknown_resource_is_empty(store: Store) -> None:
    page = await store.history(HistoryQuery("Patient", "nobody"))
    assert page.versions == [] and page.next_cursor is None


# -- matching (conditional interactions search the index) ----------------------------


async def seed_for_match(store: Store, clock: Clock) -> None:
    def tokens(*entries: tuple[str, str | None, str]) -> tuple[TokenIndexEntry, ...]:
        return tuple(TokenIndexEntry(p, s, c) for p, s, c in entries)

    await store.commit(
        [
            write(
                clock,
                "Condition",
                "c1",
                1,
                tokens=tokens(("code", SNOMED, "44054006"), ("identifier", None, "A-1")),
            ),
            write(
                clock,
                "Condition",
                "c2",
                1,
                tokens=tokens(("code", LOINC, "44054006"), ("identifier", "urn:mrn", "A-1")),
            ),
            write(
                clock,
                "Condition",
                "c3",
                1,
                tokens=tokens(("code", SNOMED, "38341003"), ("identifier", "urn:mrn", "B-2")),
            ),
            write(clock, "Procedure", "c1", 1, tokens=tokens(("code", SNOMED, "44054006"))),
        ]
    )


def crit(param: str, system: str | None, code: str | None, system_given: bool) -> TokenCriterion:
    return TokenCriterion(param, system, code, system_given)


async def test_match_by_ids_returns_current_resources_of_the_type_ordered_by_id(
    store: Store, clock: Clock
) -> None:
    await seed_for_match(store, clock)

    assert await matching(store, Criteria("Condition", ids=["c3", "c1", "zz"], limit=10)) == [
        "c1",
        "c3",
    ]
    assert await matching(store, Criteria("Condition", limit=10)) == ["c1", "c2", "c3"]
    assert await matching(store, Criteria("Condition", ids=[], limit=10)) == []


async def test_match_respects_the_limit(store: Store, clock: Clock) -> None:
    await seed_for_match(store, clock)

    assert await matching(store, Criteria("Condition", limit=2)) == ["c1", "c2"]
    assert await matching(store, Criteria("Condition", limit=1)) == ["c1"]


@pytest.mark.parametrize(
    ("criterion", "expected"),
    [
        pytest.param(crit("code", None, "44054006", False), ["c1", "c2"], id="code-any-system"),
        pytest.param(crit("code", SNOMED, "44054006", True), ["c1"], id="system-and-code"),
        pytest.param(crit("code", SNOMED, None, True), ["c1", "c3"], id="system-any-code"),
        pytest.param(crit("identifier", None, "A-1", True), ["c1"], id="code-without-system"),
        pytest.param(crit("identifier", None, "A-1", False), ["c1", "c2"], id="identifier-code"),
        pytest.param(crit("identifier", "urn:mrn", None, True), ["c2", "c3"], id="identifier-sys"),
        pytest.param(crit("code", "http://other", "44054006", True), [], id="other-system"),
        pytest.param(crit("identifier", None, "44054006", False), [], id="other-param"),
        pytest.param(crit("code", None, "44054", False), [], id="no-prefix-match"),
    ],
)
async def test_match_token_criteria_follow_fhir_token_search(
    store: Store, clock: Clock, criterion: TokenCriterion, expected: list[str]
) -> None:
    await seed_for_match(store, clock)

    query = Criteria("Condition", token_groups=[[criterion]], limit=10)
    assert await matching(store, query) == expected


async def test_match_ands_groups_and_ors_within_a_group(store: Store, clock: Clock) -> None:
    await seed_for_match(store, clock)
    snomed_either = [crit("code", SNOMED, "44054006", True), crit("code", SNOMED, "38341003", True)]
    mrn_a1 = [crit("identifier", "urn:mrn", "A-1", True)]
    mrn_any = [crit("identifier", "urn:mrn", None, True)]

    assert await matching(store, Criteria("Condition", token_groups=[snomed_either], limit=9)) == [
        "c1",
        "c3",
    ]
    assert await matching(store, Criteria("Condition", token_groups=[snomed_either, mrn_any])) == [
        "c3"
    ]
    assert await matching(store, Criteria("Condition", token_groups=[snomed_either, mrn_a1])) == []
    query = Criteria("Condition", ids=["c1", "c2"], token_groups=[mrn_any], limit=9)
    assert await matching(store, query) == ["c2"]


async def test_match_with_an_empty_or_group_matches_nothing(store: Store, clock: Clock) -> None:
    await seed_for_match(store, clock)
    assert await matching(store, Criteria("Condition", token_groups=[[]], limit=9)) == []


async def test_match_ignores_deleted_resources_and_tokens_of_old_versions(
    store: Store, clock: Clock
) -> None:
    old = (TokenIndexEntry("status", None, "planned"),)
    new = (TokenIndexEntry("status", None, "finished"),)
    await store.commit(
        [
            write(clock, "Encounter", "moved-on", 1, tokens=old),
            write(clock, "Encounter", "deleted", 1, tokens=old),
            write(clock, "Encounter", "still", 1, tokens=old),
        ]
    )
    await store.commit(
        [
            write(clock, "Encounter", "moved-on", 2, tokens=new),
            write(clock, "Encounter", "deleted", 2, deleted=True),
        ]
    )

    def status(code: str) -> Criteria:
        return Criteria("Encounter", token_groups=[[crit("status", None, code, False)]], limit=9)

    assert await matching(store, status("planned")) == ["still"]
    assert await matching(store, status("finished")) == ["moved-on"]
    assert await matching(store, Criteria("Encounter", limit=9)) == ["moved-on", "still"]
    assert await matching(store, Criteria("Encounter", ids=["deleted"])) == []

    await store.commit([write(clock, "Encounter", "deleted", 3, tokens=old)])
    assert await matching(store, status("planned")) == ["deleted", "still"]


# -- unavailability --------------------------------------------------------------------


@pytest.mark.parametrize("backend_name", ["sqlite", "mongo"])
async def test_open_raises_store_unavailable_when_the_backend_cannot_be_reached(
    backend_name: str, tmp_path: Path
) -> None:
    if backend_name == "sqlite":
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("a file where the database directory should be")
        url = f"sqlite:///{blocker / 'billable.db'}"
    else:
        url = closed_port_uri()
    unreachable = create_store(url)

    with pytest.raises(StoreUnavailable) as caught:
        await unreachable.open()
    assert "\n" not in str(caught.value)
    await unreachable.close()
