"""MongoDB-specific behaviour: URLs, errors, and the staged-commit fallback's invariants.

The contract suite shows what a commit looks like from outside; these tests open the
fallback scheme up (see ``server/storage/mongo.py``): a commit frozen after staging is
invisible, a commit decided but not rolled forward is visible and finished on open, a
stale undecided commit is cleared by the next writer it blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
from pymongo.errors import AutoReconnect

import server.storage.mongo_staged as staged_module
from server.storage.mongo import MongoStore, redact_url
from server.storage.port import HistoryQuery, StoreUnavailable, VersionConflict
from tests.storage.builders import (
    Clock,
    Criteria,
    TokenCriterion,
    TokenIndexEntry,
    matching,
    write,
)
from tests.storage.test_contract import all_history
from tests.storage.test_crash_recovery import start_commit_and_freeze
from tests.support.ferretdb import FerretDB, MongoNotAvailable, free_port, private_ferretdb

pytestmark = pytest.mark.mongo

CODE = (TokenIndexEntry("code", "http://loinc.org", "1234-5"),)


def by_code() -> Criteria:
    crit = TokenCriterion("code", "http://loinc.org", "1234-5", True)
    return Criteria("Observation", token_groups=[[crit]], limit=9)


@pytest.fixture
async def mongo_store(mongo_db_uri: str) -> AsyncIterator[MongoStore]:
    store = MongoStore(mongo_db_uri)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def own_ferretdb() -> Iterator[FerretDB]:
    """A FerretDB of the test's own, so that the test may stop it."""
    try:
        with private_ferretdb() as server:
            yield server
    except MongoNotAvailable as exc:
        pytest.skip(f"needs a FerretDB of its own to stop: {exc}")


@pytest.fixture
def staged_store(mongo_store: MongoStore) -> MongoStore:
    if mongo_store.info.atomic_commit != "staged":
        pytest.skip("the server has transactions: the staged fallback is not in use")
    return mongo_store


# -- URLs and errors -------------------------------------------------------------------


def test_location_shows_the_url_without_its_password() -> None:
    url = "mongodb://billable:s3cret@db1:27017,db2:27017/claims?replicaSet=rs0"
    assert redact_url(url) == "mongodb://billable@db1:27017,db2:27017/claims?replicaSet=rs0"
    assert MongoStore(url).info.location == redact_url(url)
    assert redact_url("mongodb://db1/x") == "mongodb://db1/x"


async def test_the_database_is_the_one_named_in_the_url(
    mongo_store: MongoStore, mongo_db_uri: str
) -> None:
    assert mongo_store._versions.database.name == mongo_db_uri.rsplit("/", 1)[1]


async def test_open_on_an_unreachable_server_says_so_in_one_line_without_the_password() -> None:
    url = f"mongodb://user:s3cret@127.0.0.1:{free_port()}/x?serverSelectionTimeoutMS=300"
    store = MongoStore(url)

    with pytest.raises(StoreUnavailable) as caught:
        await store.open()

    message = str(caught.value)
    assert "cannot reach MongoDB at mongodb://user@127.0.0.1" in message
    assert "s3cret" not in message and "\n" not in message


async def test_every_operation_raises_store_unavailable_once_the_server_is_gone(
    own_ferretdb: FerretDB,
) -> None:
    store = MongoStore(f"{own_ferretdb.uri}gone?serverSelectionTimeoutMS=300")
    await store.open()
    clock = Clock()
    await store.commit([write(clock, "Patient", "p1", 1)])
    own_ferretdb.stop()

    with pytest.raises(StoreUnavailable):
        await store.ping()
    with pytest.raises(StoreUnavailable):
        await store.read("Patient", "p1")
    with pytest.raises(StoreUnavailable):
        await store.vread("Patient", "p1", 1)
    with pytest.raises(StoreUnavailable):
        await matching(store, Criteria("Patient"))
    with pytest.raises(StoreUnavailable):
        await store.history(HistoryQuery())
    with pytest.raises(StoreUnavailable):
        await store.commit([write(clock, "Patient", "p1", 2)])
    await store.close()


# -- token keys --------------------------------------------------------------------------


async def test_token_keys_stay_unambiguous_whatever_the_system_and_code_hold(
    mongo_store: MongoStore,
) -> None:
    clock = Clock()
    tricky = (TokenIndexEntry("code", 'a","b', "c"),)
    plain = (TokenIndexEntry("code", "a", 'b","c'),)
    await mongo_store.commit(
        [
            write(clock, "Observation", "tricky", 1, tokens=tricky),
            write(clock, "Observation", "plain", 1, tokens=plain),
        ]
    )

    def by(system: str, code: str) -> Criteria:
        crit = TokenCriterion("code", system, code, True)
        return Criteria("Observation", token_groups=[[crit]], limit=9)

    assert await matching(mongo_store, by("a", 'b","c')) == ["plain"]
    assert await matching(mongo_store, by('a","b', "c")) == ["tricky"]


async def test_a_database_of_the_last_release_drops_its_identifier_index(
    mongo_db_uri: str,
) -> None:
    """Release 0.1.0 kept identifier tokens in ``tk`` keys with a ``tokens`` index."""
    store = MongoStore(mongo_db_uri)
    await store.open()
    clock = Clock()
    await store.commit([write(clock, "Patient", "old", 1)])
    versions = store._versions
    await versions.update_many({}, {"$set": {"tk": ['["p","identifier"]']}})
    await versions.create_index([("type", 1), ("tk", 1)], name="tokens")
    await store.close()

    reopened = MongoStore(mongo_db_uri)
    await reopened.open()
    try:
        names = {ix["name"] async for ix in await reopened._versions.list_indexes()}
        assert "tokens" not in names
        assert await reopened._versions.count_documents({"tk": {"$exists": True}}) == 0
        found = await reopened.read("Patient", "old")
        assert found is not None and found.version == 1
    finally:
        await reopened.close()


# -- the staged fallback -------------------------------------------------------------------


async def test_a_server_without_transactions_gets_staged_commits(staged_store: MongoStore) -> None:
    assert staged_store.info.atomic_commit == "staged"


async def test_readers_never_see_a_staged_commit_before_its_commit_point(
    staged_store: MongoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = staged_store
    clock = Clock()
    await store.commit([write(clock, "Observation", "o1", 1, tokens=CODE)])
    history_before = await all_history(store, HistoryQuery())
    paused, release = asyncio.Event(), asyncio.Event()

    async def freeze() -> None:
        paused.set()
        await release.wait()

    monkeypatch.setattr(staged_module, "apause_before_commit", freeze)
    commit = asyncio.create_task(
        store.commit(
            [
                write(clock, "Observation", "o2", 1, tokens=CODE),
                write(clock, "Observation", "o1", 2),  # drops the token
            ]
        )
    )
    await asyncio.wait_for(paused.wait(), 10)

    staged = await store._versions.count_documents({"txn": {"$exists": True}})
    assert staged == 2, "the commit is frozen after staging both versions"
    current = await store.read("Observation", "o1")
    assert current is not None and current.version == 1
    assert await store.read("Observation", "o2") is None
    assert await store.vread("Observation", "o1", 2) is None
    assert await matching(store, by_code()) == ["o1"]
    assert await all_history(store, HistoryQuery()) == history_before
    with pytest.raises(VersionConflict):  # the resource is claimed by the staged commit
        await store.commit([write(clock, "Observation", "o1", 2)])

    release.set()
    await asyncio.wait_for(commit, 10)

    current = await store.read("Observation", "o1")
    assert current is not None and current.version == 2
    assert await matching(store, by_code()) == ["o2"]
    assert await store._versions.count_documents({"txn": {"$exists": True}}) == 0
    assert await store._versions.count_documents({"sup": {"$exists": True}}) == 0


async def test_a_decided_commit_is_visible_before_roll_forward_and_finished_on_open(
    staged_store: MongoStore, mongo_db_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = staged_store
    clock = Clock()
    await store.commit([write(clock, "Observation", "o1", 1, tokens=CODE)])

    async def connection_lost(txn: str, superseding: bool = True) -> None:
        raise AutoReconnect("connection lost after the commit point")

    monkeypatch.setattr(store, "_roll_forward", connection_lost)
    with pytest.raises(StoreUnavailable):
        await store.commit(
            [
                write(clock, "Observation", "o1", 2),
                write(clock, "Observation", "o2", 1, tokens=CODE),
            ]
        )
    monkeypatch.undo()

    # Decided: visible at once, even with every marker still in place.
    assert await store._versions.count_documents({"txn": {"$exists": True}}) == 2
    current = await store.read("Observation", "o1")
    assert current is not None and current.version == 2
    assert await matching(store, by_code()) == ["o2"]
    assert [v for _, _, v in await all_history(store, HistoryQuery("Observation", "o1"))] == [2, 1]

    reopened = MongoStore(mongo_db_uri)
    await reopened.open()
    try:
        assert await reopened._versions.count_documents({"txn": {"$exists": True}}) == 0
        assert await reopened._versions.count_documents({"sup": {"$exists": True}}) == 0
        assert await reopened._versions.count_documents({"cur": True}) == 2
        assert await matching(reopened, by_code()) == ["o2"]
        await reopened.commit([write(clock, "Observation", "o1", 3)])
    finally:
        await reopened.close()


async def test_an_undecided_commit_blocks_its_resources_until_stale_then_a_writer_clears_it(
    staged_store: MongoStore, mongo_db_uri: str
) -> None:
    clock = Clock()
    await staged_store.commit([write(clock, "Observation", "o1", 1, tokens=CODE)])
    doomed = write(clock, "Observation", "o1", 2)
    child = await start_commit_and_freeze(
        mongo_db_uri,
        [["Observation", "o1", 1, 2, doomed.last_updated, (doomed.body or b"").decode(), []]],
    )
    child.kill()
    await child.wait()

    # Young: the undecided commit may still be running somewhere, so it holds the claim.
    with pytest.raises(VersionConflict):
        await staged_store.commit([write(clock, "Observation", "o1", 2, tokens=CODE)])

    # Stale: the next writer aborts it and goes ahead, no restart needed.
    staged_store._stale_after = timedelta(0)
    await staged_store.commit([write(clock, "Observation", "o1", 2, tokens=CODE)])

    current = await staged_store.read("Observation", "o1")
    assert current is not None and current.version == 2
    assert await matching(staged_store, by_code()) == ["o1"]
    assert await staged_store._versions.count_documents({"txn": {"$exists": True}}) == 0
    assert await staged_store._versions.count_documents({"sup": {"$exists": True}}) == 0


async def test_a_write_on_a_version_committed_but_not_rolled_forward_supersedes_it(
    staged_store: MongoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The usual one-update check of the expected version refuses a version still carrying
    its commit's marker; the writer then looks the version up, finds it visible (its
    commit is decided) and goes ahead instead of reporting a conflict."""
    store = staged_store
    clock = Clock()
    await store.commit([write(clock, "Observation", "o1", 1, tokens=CODE)])

    async def connection_lost(txn: str, superseding: bool = True) -> None:
        raise AutoReconnect("connection lost after the commit point")

    monkeypatch.setattr(store, "_roll_forward", connection_lost)
    with pytest.raises(StoreUnavailable):
        await store.commit([write(clock, "Observation", "o1", 2, tokens=CODE)])
    monkeypatch.undo()
    assert await store._versions.count_documents({"txn": {"$exists": True}}) == 1

    await store.commit([write(clock, "Observation", "o1", 3, tokens=CODE)])

    current = await store.read("Observation", "o1")
    assert current is not None and current.version == 3
    assert [v for _, _, v in await all_history(store, HistoryQuery("Observation", "o1"))] == [
        3,
        2,
        1,
    ]
    assert await matching(store, by_code()) == ["o1"]


async def test_expecting_a_version_an_undecided_commit_staged_conflicts_and_stores_nothing(
    staged_store: MongoStore, mongo_db_uri: str
) -> None:
    """Version 2 exists only as another commit's staging: to readers the resource is at
    version 1, so a write expecting 2 is a conflict, and the successor it staged (the
    unique index let it claim "after version 2") is removed again."""
    clock = Clock()
    await staged_store.commit([write(clock, "Observation", "o1", 1, tokens=CODE)])
    pending = write(clock, "Observation", "o1", 2)
    child = await start_commit_and_freeze(
        mongo_db_uri,
        [["Observation", "o1", 1, 2, pending.last_updated, (pending.body or b"").decode(), []]],
    )
    try:
        with pytest.raises(VersionConflict) as conflict:
            await staged_store.commit([write(clock, "Observation", "o1", 3, expected=2)])
        assert conflict.value.actual == 1
        assert await staged_store._versions.count_documents({"id": "o1", "version": 3}) == 0
        current = await staged_store.read("Observation", "o1")
        assert current is not None and current.version == 1
    finally:
        child.kill()
        await child.wait()


@pytest.fixture
def ferretdb_store(mongo_store: MongoStore) -> MongoStore:
    if not mongo_store._heads.enabled:
        pytest.skip("heads are kept on FerretDB only (MongoDB seeks its version index)")
    return mongo_store


async def test_a_resource_is_given_its_head_before_its_first_version_is_staged(
    ferretdb_store: MongoStore, mongo_db_uri: str
) -> None:
    """A reader that finds no head may answer "no such resource": that is only true if
    the head exists before any version can, staged ones included."""
    pending = write(Clock(), "Observation", "o1", 1)
    child = await start_commit_and_freeze(
        mongo_db_uri,
        [["Observation", "o1", 0, 1, pending.last_updated, (pending.body or b"").decode(), []]],
    )
    try:
        assert await ferretdb_store._versions.count_documents({"id": "o1", "txn": {"$ne": None}})
        assert await ferretdb_store._heads.may_exist("Observation", "o1")
        assert not await ferretdb_store._heads.may_exist("Observation", "o2")
    finally:
        child.kill()
        await child.wait()


async def test_a_store_written_without_heads_gets_them_on_open(
    ferretdb_store: MongoStore, mongo_db_uri: str
) -> None:
    """Data written by an earlier release (no ``heads`` collection) stays readable: the
    next open adds the missing heads, deleted resources included."""
    clock = Clock()
    await ferretdb_store.commit(
        [write(clock, "Patient", "p1", 1), write(clock, "Patient", "p2", 1)]
    )
    await ferretdb_store.commit([write(clock, "Patient", "p2", 2, deleted=True)])
    await ferretdb_store._heads._heads.delete_many({})  # as an earlier release left it
    assert await ferretdb_store.read("Patient", "p1") is None  # the head is what says "absent"

    reopened = MongoStore(mongo_db_uri)
    await reopened.open()
    try:
        p1 = await reopened.read("Patient", "p1")
        assert p1 is not None and p1.version == 1
        p2 = await reopened.read("Patient", "p2")
        assert p2 is not None and p2.deleted and p2.version == 2
        assert await reopened.read("Patient", "p3") is None
        with pytest.raises(VersionConflict):  # a create over a deleted resource still conflicts
            await reopened.commit([write(clock, "Patient", "p2", 1)])
        await reopened.commit([write(clock, "Patient", "p2", 3, expected=2)])
    finally:
        await reopened.close()


async def test_a_commit_whose_middle_write_conflicts_stores_none_of_its_writes(
    staged_store: MongoStore,
) -> None:
    """The versions of a commit are staged with one ordered insert_many: a duplicate key
    in the middle stops it there, and the abort removes what went in before."""
    clock = Clock()
    await staged_store.commit([write(clock, "Observation", "o2", 1)])
    with pytest.raises(VersionConflict) as conflict:
        await staged_store.commit(
            [write(clock, "Observation", f"o{i}", 1, tokens=CODE) for i in (1, 2, 3)]
        )
    assert (conflict.value.resource_id, conflict.value.actual) == ("o2", 1)
    assert await staged_store.read("Observation", "o1") is None
    assert await staged_store.read("Observation", "o3") is None
    assert await staged_store._versions.count_documents({"txn": {"$exists": True}}) == 0
    assert await matching(staged_store, by_code()) == []


async def test_a_stale_claim_in_the_middle_of_a_commit_is_cleared_and_the_rest_staged(
    staged_store: MongoStore, mongo_db_uri: str
) -> None:
    clock = Clock()
    pending = write(clock, "Observation", "o2", 1)
    child = await start_commit_and_freeze(
        mongo_db_uri,
        [["Observation", "o2", 0, 1, pending.last_updated, (pending.body or b"").decode(), []]],
    )
    child.kill()
    await child.wait()
    staged_store._stale_after = timedelta(0)

    await staged_store.commit(
        [write(clock, "Observation", f"o{i}", 1, tokens=CODE) for i in (1, 2, 3)]
    )

    assert await matching(staged_store, by_code()) == ["o1", "o2", "o3"]
    assert await staged_store._versions.count_documents({"txn": {"$exists": True}}) == 0
