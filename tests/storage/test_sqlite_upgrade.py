"""A database written by release 0.1.0 opens and works: its identifier-only index
(``token_index``) is dropped on open, its resources stay readable and searchable."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

from server.storage.sqlite import SQLiteStore
from server.storage.sqlite_bodies import ZSTD_WITH_DICTIONARY
from server.storage.sqlite_schema import LAYOUT
from tests.storage.builders import Clock, Criteria, TokenCriterion, TokenIndexEntry, matching, write


async def test_the_identifier_index_of_the_last_release_is_dropped_on_open(tmp_path: Path):
    path = tmp_path / "billable.db"
    store = SQLiteStore(path)
    await store.open()
    clock = Clock()
    code = (TokenIndexEntry("identifier", "urn:mrn", "A-1"),)
    await store.commit([write(clock, "Patient", "old", 1, tokens=code)])
    await store.close()
    # What 0.1.0 left next to the resources.
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE token_index (type TEXT NOT NULL, id TEXT NOT NULL,"
            " param TEXT NOT NULL, system TEXT, code TEXT NOT NULL);"
            "CREATE INDEX token_index_lookup ON token_index (type, param, code, system);"
            "INSERT INTO token_index VALUES ('Patient', 'old', 'identifier', 'urn:mrn', 'A-1');"
        )

    reopened = SQLiteStore(path)
    await reopened.open()
    try:
        with sqlite3.connect(path) as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "token_index" not in tables and "token_index_lookup" not in tables
        found = await reopened.read("Patient", "old")
        assert found is not None and found.version == 1
        mrn = Criteria(
            "Patient", token_groups=[[TokenCriterion("identifier", "urn:mrn", "A-1", True)]]
        )
        assert await matching(reopened, mrn) == ["old"]
        await reopened.commit([write(clock, "Patient", "old", 2, tokens=code)])
    finally:
        await reopened.close()


# What release 0.3 created (storage layout 0): index rows keyed by (type, id) text.
LAYOUT_0 = """
CREATE TABLE resource_versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, id TEXT NOT NULL,
    version INTEGER NOT NULL, last_updated TEXT NOT NULL, deleted INTEGER NOT NULL,
    is_current INTEGER NOT NULL, body BLOB, UNIQUE (type, id, version));
CREATE TABLE sp_token (type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    system TEXT, code TEXT NOT NULL);
CREATE INDEX sp_token_value ON sp_token (type, param, code, system, id);
CREATE INDEX sp_token_owner ON sp_token (type, id, param);
CREATE TABLE sp_string (type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    norm TEXT NOT NULL, exact TEXT NOT NULL);
CREATE INDEX sp_string_owner ON sp_string (type, id, param);
CREATE TABLE sp_ref (type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    target_type TEXT, target_id TEXT, url TEXT);
CREATE INDEX sp_ref_owner ON sp_ref (type, id, param);
CREATE TABLE sp_date (type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    lo INTEGER NOT NULL, hi INTEGER NOT NULL);
INSERT INTO resource_versions VALUES
    (1, 'Patient', 'p1', 1, '2024-01-01T00:00:00.000000Z', 0, 0,
     CAST('{"resourceType":"Patient","id":"p1","meta":{"versionId":"1"}}' AS BLOB)),
    (2, 'Patient', 'p1', 2, '2024-01-02T00:00:00.000000Z', 0, 1,
     CAST('{"resourceType":"Patient","id":"p1","meta":{"versionId":"2"},"gender":"female"}'
          AS BLOB)),
    (3, 'Claim', 'c1', 1, '2024-01-03T00:00:00.000000Z', 0, 1,
     CAST('{"resourceType":"Claim","id":"c1","meta":{"versionId":"1"}}' AS BLOB));
INSERT INTO sp_token VALUES
    ('Patient', 'p1', 'gender', 'http://hl7.org/fhir/administrative-gender', 'female');
INSERT INTO sp_string VALUES ('Patient', 'p1', 'name', 'smith', 'Smith');
INSERT INTO sp_ref VALUES ('Claim', 'c1', 'patient', 'Patient', 'p1', NULL);
INSERT INTO sp_date VALUES ('Claim', 'c1', 'created', 100, 200);
"""


async def test_a_layout_0_store_is_upgraded_on_open_and_stays_readable_and_searchable(
    tmp_path: Path,
):
    from server.search.expr import Dates, Range, Reference, RefValue, String
    from server.storage.port import SearchQuery

    path = tmp_path / "billable.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(LAYOUT_0)
    store = SQLiteStore(path)
    await store.open()
    try:
        found = await store.read("Patient", "p1")
        assert found is not None and found.body is not None and b'"gender"' in found.body
        women = Criteria(
            "Patient",
            token_groups=[
                [
                    TokenCriterion(
                        "gender", "http://hl7.org/fhir/administrative-gender", "female", True
                    )
                ]
            ],
        )
        assert await matching(store, women) == ["p1"]
        by_name = await store.search(SearchQuery(("Patient",), String("name", ("smi",), "start")))
        assert [v.id for v in by_name.versions] == ["p1"]
        of_p1 = await store.search(
            SearchQuery(("Claim",), Reference("patient", (RefValue("Patient", "p1"),)))
        )
        assert [v.id for v in of_p1.versions] == ["c1"]
        created = await store.search(
            SearchQuery(("Claim",), Dates("created", (Range("ge", 150, 150),)))
        )
        assert [v.id for v in created.versions] == ["c1"]
        await store.commit([write(Clock(), "Patient", "p1", 3)])  # writes keep working
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LAYOUT
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert not {t for t in tables if t.endswith("_layout0")}


async def test_a_store_of_a_newer_layout_is_refused_with_a_message(tmp_path: Path):
    import pytest

    from server.storage.port import StoreUnavailable

    path = tmp_path / "billable.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 9")
    store = SQLiteStore(path)
    with pytest.raises(StoreUnavailable, match=f"storage layout 9, newer than the {LAYOUT}"):
        await store.open()


async def test_bodies_are_stored_compressed_and_read_back_byte_for_byte(tmp_path: Path):
    path = tmp_path / "billable.db"
    store = SQLiteStore(path)
    await store.open()
    clock = Clock()
    long_text = "the same words again and again " * 20
    writes = []
    for i in range(40):  # enough bodies of one type in one commit to train a dictionary
        w = write(clock, "Observation", f"o{i}", 1)
        writes.append(replace(w, body=w.body[:-1] + f',"note":"{long_text}{i}"}}'.encode()))
    await store.commit(writes)
    try:
        for w in writes:
            found = await store.read("Observation", w.id)
            assert found is not None and found.body == w.body
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        stored = sum(len(r[0]) for r in conn.execute("SELECT body FROM resource_versions"))
        assert conn.execute("SELECT count(*) FROM body_dictionaries").fetchone()[0] == 1
    assert stored * 4 < sum(len(w.body) for w in writes if w.body)


async def test_closing_the_store_leaves_no_write_ahead_log_behind(tmp_path: Path):
    path = tmp_path / "billable.db"
    store = SQLiteStore(path)
    await store.open()
    clock = Clock()
    await store.commit([write(clock, "Patient", f"p{i}", 1) for i in range(200)])
    assert _wal_bytes(path) > 0
    await store.close()
    assert _wal_bytes(path) == 0


def _wal_bytes(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


async def test_a_type_written_one_at_a_time_gets_a_dictionary_from_its_stored_bodies(
    tmp_path: Path,
):
    path = tmp_path / "billable.db"
    store = SQLiteStore(path)
    await store.open()
    clock = Clock()
    written = []
    try:
        for i in range(40):  # one Claim per commit, as the coding engine writes them
            w = write(clock, "Claim", f"c{i}", 1)
            w = replace(w, body=w.body[:-1] + b',"text":"' + b"claim words " * 30 + b'"}')
            await store.commit([w])
            written.append(w)
        for w in written:
            found = await store.read("Claim", w.id)
            assert found is not None and found.body == w.body
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        types = [r[0] for r in conn.execute("SELECT type FROM body_dictionaries")]
        last = conn.execute("SELECT body FROM resource_versions WHERE id = 'c39'").fetchone()[0]
    assert types == ["Claim"]
    assert last[0] == ZSTD_WITH_DICTIONARY  # compressed against the dictionary
