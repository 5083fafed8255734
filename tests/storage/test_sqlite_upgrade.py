"""A database written by release 0.1.0 opens and works: its identifier-only index
(``token_index``) is dropped on open, its resources stay readable and searchable."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from server.storage.sqlite import SQLiteStore
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
