"""Stored bodies: zstd against a dictionary per type (layout 3), and layout 2's zlib
bodies still read byte for byte after the store is upgraded in place."""

from __future__ import annotations

import sqlite3
import zlib
from dataclasses import replace
from pathlib import Path

import orjson

from server.storage.port import Write
from server.storage.sqlite import SQLiteStore
from server.storage.sqlite_bodies import (
    DEFLATE,
    DEFLATE_WITH_DICTIONARY,
    RETRAIN_AT,
    TRAIN_MIN,
    ZSTD,
    ZSTD_WITH_DICTIONARY,
)
from server.storage.sqlite_schema import LAYOUT
from tests.storage.builders import Clock, write


def _observation(clock: Clock, i: int, version: int = 1) -> Write:
    """An Observation-like body: the same keys and systems each time, its own values."""
    w = write(clock, "Observation", f"o{i}", version)
    extra = {
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": f"{8000 + i % 40}-{i % 9}"}]},
        "subject": {"reference": f"Patient/p{i % 17}"},
        "effectiveDateTime": f"2026-0{1 + i % 9}-1{i % 10}T10:00:00Z",
        "valueQuantity": {"value": i * 1.5, "unit": "mg/dL", "system": "http://unitsofmeasure.org"},
    }
    body = orjson.loads(w.body or b"{}") | extra
    return replace(w, body=orjson.dumps(body))


async def _commit_and_read_back(path: Path, batches: list[list[Write]]) -> None:
    """Commit each batch in turn, then read every write back: byte for byte the same."""
    store = SQLiteStore(path)
    await store.open()
    try:
        for batch in batches:
            await store.commit(batch)
        for w in (w for batch in batches for w in batch):
            found = await store.read(w.resource_type, w.id)
            assert found is not None and found.body == w.body
    finally:
        await store.close()


def _tags(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [r[0][0] for r in conn.execute("SELECT body FROM resource_versions ORDER BY seq")]


def _dictionaries(path: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(path) as conn:
        return list(conn.execute("SELECT type, format, samples FROM body_dictionaries ORDER BY id"))


async def test_a_batch_trains_a_zstd_dictionary_and_every_body_reads_back_byte_for_byte(
    tmp_path: Path,
):
    path = tmp_path / "billable.db"
    clock = Clock()
    writes = [_observation(clock, i) for i in range(200)]
    await _commit_and_read_back(path, [writes])
    assert _dictionaries(path) == [("Observation", "zstd", 200)]
    assert set(_tags(path)) == {ZSTD_WITH_DICTIONARY}
    with sqlite3.connect(path) as conn:
        stored = sum(len(r[0]) for r in conn.execute("SELECT body FROM resource_versions"))
    assert stored * 5 < sum(len(w.body or b"") for w in writes)


async def test_a_type_with_too_few_bodies_for_a_dictionary_is_stored_as_plain_zstd(
    tmp_path: Path,
):
    path = tmp_path / "billable.db"
    clock = Clock()
    await _commit_and_read_back(path, [[_observation(clock, i) for i in range(TRAIN_MIN - 1)]])
    assert _dictionaries(path) == []
    assert set(_tags(path)) == {ZSTD}


async def test_a_dictionary_trained_on_few_bodies_is_retrained_once_many_are_stored(
    tmp_path: Path,
):
    path = tmp_path / "billable.db"
    clock = Clock()
    # 40 at a time, as a slow trickle of one type would arrive
    batches = [
        [_observation(clock, i) for i in range(start, start + 40)]
        for start in range(0, RETRAIN_AT + 200, 40)
    ]
    await _commit_and_read_back(path, batches)
    dictionaries = _dictionaries(path)
    assert [d[:2] for d in dictionaries] == [("Observation", "zstd")] * 2
    assert dictionaries[0][2] < RETRAIN_AT <= dictionaries[1][2]
    with sqlite3.connect(path) as conn:
        newest = conn.execute("SELECT max(id) FROM body_dictionaries").fetchone()[0]
        last = conn.execute("SELECT body FROM resource_versions ORDER BY seq DESC").fetchone()[0]
    assert last[0] == ZSTD_WITH_DICTIONARY and last[1] == newest  # varint of a small id


async def test_a_rolled_back_commit_forgets_the_dictionary_it_trained(tmp_path: Path):
    from server.storage.port import VersionConflict

    path = tmp_path / "billable.db"
    store = SQLiteStore(path)
    await store.open()
    clock = Clock()
    try:
        writes = [_observation(clock, i) for i in range(100)]
        clash = replace(_observation(clock, 0), expected_version=7)  # fails the version check
        try:
            await store.commit([*writes, clash])
        except VersionConflict:
            pass
        else:  # pragma: no cover - the conflict is the point of the test
            raise AssertionError("the commit should have failed")
        await store.commit(writes)
        for w in writes:
            found = await store.read("Observation", w.id)
            assert found is not None and found.body == w.body
    finally:
        await store.close()
    assert [d[:2] for d in _dictionaries(path)] == [("Observation", "zstd")]


# What release 0.5 (layout 2) left: zlib bodies, some against a deflate dictionary.
def _layout_2_store(path: Path, bodies: list[bytes]) -> None:
    """Write ``bodies`` as Observations the way layout 2 stored them."""
    dictionary = b"".join(bodies)[-32 * 1024 :]
    from server.storage.sqlite_schema import INDEX_TABLES, VERSIONS

    with sqlite3.connect(path) as conn:
        conn.executescript(
            VERSIONS
            + INDEX_TABLES
            + "CREATE TABLE body_dictionaries (id INTEGER PRIMARY KEY, type TEXT NOT NULL,"
            " dictionary BLOB NOT NULL, created TEXT NOT NULL);"
        )
        conn.execute(
            "INSERT INTO body_dictionaries VALUES (1, 'Observation', ?, '2026-06-01')",
            (dictionary,),
        )
        for i, body in enumerate(bodies):
            if i % 2:
                packer = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=dictionary)
                blob = bytes([DEFLATE_WITH_DICTIONARY, 1]) + packer.compress(body) + packer.flush()
            else:
                packer = zlib.compressobj(6, zlib.DEFLATED, -15)
                blob = bytes([DEFLATE]) + packer.compress(body) + packer.flush()
            conn.execute(
                "INSERT INTO resource_versions"
                " (type, id, version, last_updated, deleted, is_current, body)"
                " VALUES ('Observation', ?, 1, ?, 0, 1, ?)",
                (f"o{i}", f"2026-06-01T00:00:{i % 60:02d}.{i:06d}Z", blob),
            )
        conn.execute("PRAGMA user_version = 2")


async def test_a_layout_2_store_keeps_its_zlib_bodies_readable_and_writes_zstd_after_upgrade(
    tmp_path: Path,
):
    path = tmp_path / "billable.db"
    clock = Clock()
    old = [_observation(clock, i).body or b"" for i in range(60)]
    _layout_2_store(path, old)
    store = SQLiteStore(path)
    await store.open()
    try:
        for i, body in enumerate(old):
            found = await store.read("Observation", f"o{i}")
            assert found is not None and found.body == body
        new = [_observation(clock, i, version=2) for i in range(TRAIN_MIN)]
        await store.commit(new)
        for w in new:
            found = await store.read("Observation", w.id)
            assert found is not None and found.body == w.body
        for i in range(TRAIN_MIN, 60):  # untouched old bodies: still zlib, still readable
            found = await store.read("Observation", f"o{i}")
            assert found is not None and found.body == old[i]
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LAYOUT == 3
    # trained on the stored (zlib) bodies and the new ones together
    assert _dictionaries(path) == [
        ("Observation", "deflate", 0),
        ("Observation", "zstd", len(old) + TRAIN_MIN),
    ]
    tags = _tags(path)
    assert set(tags[:60]) == {DEFLATE, DEFLATE_WITH_DICTIONARY}
    assert set(tags[60:]) == {ZSTD_WITH_DICTIONARY}
