"""The SQLite index writer gathers a transaction's rows and inserts them per table.

``IndexWriter.add`` queues rows; ``flush`` (the store calls it before COMMIT) inserts
them with one statement per table. These tests show that batching never loses, keeps
or misplaces a row: every resource of a large commit is found, a version superseded
inside the same commit leaves no rows, a failed commit leaves none, and a COMMIT
without ``flush`` is refused loudly instead of silently losing the index.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from server.storage import sqlite_index
from server.storage.factory import create_store
from server.storage.port import SearchIndex, VersionConflict
from server.storage.sqlite_index import IndexWriter
from server.storage.sqlite_schema import INDEX_TABLES
from tests.storage.builders import Clock, Criteria, TokenCriterion, TokenIndexEntry, matching, write


def status(code: str) -> TokenIndexEntry:
    return TokenIndexEntry("status", "urn:s", code)


def with_status(code: str) -> Criteria:
    return Criteria(
        "Claim", token_groups=[[TokenCriterion("status", "urn:s", code, True)]], limit=500
    )


async def test_every_resource_of_a_commit_larger_than_the_pending_limit_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Clock
):
    monkeypatch.setattr(sqlite_index, "PENDING_LIMIT", 7)  # flushes mid-commit, and at the end
    store = create_store(f"sqlite:///{tmp_path / 'b.db'}")
    await store.open()
    try:
        writes = [
            write(clock, "Claim", f"c{i}", 1, tokens=(status("active" if i % 2 else "draft"),))
            for i in range(50)
        ]
        await store.commit(writes)
        assert sorted(await matching(store, with_status("active"))) == sorted(
            f"c{i}" for i in range(50) if i % 2
        )
        assert len(await matching(store, with_status("draft"))) == 25
    finally:
        await store.close()


async def test_a_version_superseded_in_the_same_commit_leaves_none_of_its_rows(
    tmp_path: Path, clock: Clock
):
    store = create_store(f"sqlite:///{tmp_path / 'b.db'}")
    await store.open()
    try:
        await store.commit(
            [
                write(clock, "Claim", "c1", 1, tokens=(status("draft"),)),
                write(clock, "Claim", "c2", 1, tokens=(status("draft"),)),
                write(clock, "Claim", "c1", 2, tokens=(status("active"),)),
            ]
        )
        assert await matching(store, with_status("draft")) == ["c2"]
        assert await matching(store, with_status("active")) == ["c1"]
    finally:
        await store.close()


async def test_a_failed_commit_indexes_nothing_and_the_next_one_everything(
    tmp_path: Path, clock: Clock
):
    store = create_store(f"sqlite:///{tmp_path / 'b.db'}")
    await store.open()
    try:
        with pytest.raises(VersionConflict):
            await store.commit(
                [
                    write(clock, "Claim", "c1", 1, tokens=(status("active"),)),
                    write(clock, "Claim", "c9", 3, tokens=(status("active"),)),  # never existed
                ]
            )
        assert await matching(store, with_status("active")) == []
        await store.commit([write(clock, "Claim", "c2", 1, tokens=(status("active"),))])
        assert await matching(store, with_status("active")) == ["c2"]
    finally:
        await store.close()


def test_a_commit_without_flush_is_refused_and_flush_writes_one_row_per_value(tmp_path: Path):
    c = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    c.executescript(INDEX_TABLES)
    writer = IndexWriter()
    index = SearchIndex(
        tokens=[("status", "urn:s", "active"), ("status", "urn:s", "active")],
        strings=[("name", "acme", "Acme")],
        dates=[("created", 1, 2)],
    )
    c.execute("BEGIN")
    writer.add(c, "Claim", 1, index)
    writer.add(c, "Claim", 2, index)
    assert writer.pending == 6
    assert c.execute("SELECT count(*) FROM sp_token").fetchone() == (0,)  # queued only
    writer.flush(c)
    c.execute("COMMIT")
    writer.committed()
    counts = [
        c.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("sp_token", "sp_string", "sp_date")
    ]
    assert counts == [2, 2, 2]
    c.execute("BEGIN")
    writer.add(c, "Claim", 3, index)
    c.execute("COMMIT")
    with pytest.raises(RuntimeError, match="flush"):
        writer.committed()
