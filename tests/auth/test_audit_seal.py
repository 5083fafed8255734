"""The audit chain resists someone who can write to the database, and verify reports.

The events are written by a real SMART-mode app (real tokens, real HTTP through the
ASGI stack); the attacker then edits the database directly (SQL on SQLite, the driver
on MongoDB/FerretDB), keeping version numbers intact, and ``billable audit verify`` (the
real command, in a subprocess) must fail with a line naming the record, never a
traceback. The key and the anchor live outside the store (``server/audit/seal.py``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pymongo
import pytest
from bson import Binary
from fastapi.testclient import TestClient

from server.audit.chain import (
    EVENT_TYPE,
    GENESIS,
    HASH_URL,
    HEAD_ID,
    HEAD_TYPE,
    PREVIOUS_HASH_URL,
    AuditRecord,
    AuditTrail,
    build_event,
    chain_hash,
    event_id,
)
from server.audit.seal import default_key_file
from server.auth.setup import audit_seal
from server.config import Settings
from server.repository import Repository
from server.storage.factory import create_store, sqlite_path
from server.storage.port import Write
from server.storage.sqlite_bodies import BodyCodec
from tests.auth.conftest import mint


class RawDatabase:
    """The database as an insider sees it: rows and documents, no Billable code."""

    def __init__(self, store_url: str) -> None:
        self.store_url = store_url

    def _mongo(self) -> Any:
        return pymongo.MongoClient(self.store_url).get_default_database()["versions"]

    def body(self, rtype: str, rid: str) -> dict[str, Any]:
        if self.store_url.startswith("sqlite"):
            with sqlite3.connect(sqlite_path(self.store_url)) as db:
                row = db.execute(
                    "SELECT body FROM resource_versions WHERE type=? AND id=? AND is_current=1",
                    (rtype, rid),
                ).fetchone()
                # Bodies are stored compressed (docs/storage layout); an insider inflates them.
                raw = BodyCodec().decode(db, row[0])
            assert raw is not None
            return dict(orjson.loads(raw))
        doc = self._mongo().find_one({"type": rtype, "id": rid, "cur": True})
        return dict(orjson.loads(bytes(doc["body"])))

    def set_body(self, rtype: str, rid: str, body: bytes) -> None:
        if self.store_url.startswith("sqlite"):
            with sqlite3.connect(sqlite_path(self.store_url)) as db:
                db.execute(
                    "UPDATE resource_versions SET body=? WHERE type=? AND id=? AND is_current=1",
                    (body, rtype, rid),
                )
            return
        self._mongo().update_one(
            {"type": rtype, "id": rid, "cur": True}, {"$set": {"body": Binary(body)}}
        )

    def delete(self, rtype: str, rid: str) -> None:
        if self.store_url.startswith("sqlite"):
            with sqlite3.connect(sqlite_path(self.store_url)) as db:
                db.execute("DELETE FROM resource_versions WHERE type=? AND id=?", (rtype, rid))
            return
        self._mongo().delete_many({"type": rtype, "id": rid})

    def head(self) -> dict[str, Any]:
        return self.body(HEAD_TYPE, HEAD_ID)


def verify(store_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "audit", "verify", "--store", store_url],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _own_hash(event: dict[str, Any]) -> str:
    return str(next(e["valueString"] for e in event["extension"] if e["url"] == HASH_URL))


def _some_events(client: TestClient, n: int = 8) -> None:
    headers = mint(client, "system/*.rs")
    for i in range(n):
        client.get(f"/fhir/Claim/c{i}", headers=headers)


def test_an_intact_chain_verifies(client: TestClient, store_url: str):
    _some_events(client)
    result = verify(store_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audit chain intact" in result.stdout


def test_editing_an_event_and_recomputing_every_hash_fails_verify(
    client: TestClient, store_url: str
):
    _some_events(client)
    raw = RawDatabase(store_url)
    head = raw.head()
    # The insider turns event 3 (a read) into a success and recomputes every hash after
    # it, as the unkeyed chain allowed; it cannot compute the keyed ones.
    previous = _own_hash(raw.body(EVENT_TYPE, event_id(2)))
    for seq in range(3, head["seq"] + 1):
        event = raw.body(EVENT_TYPE, event_id(seq))
        if seq == 3:
            event["outcome"] = "0"
        event["extension"] = [e for e in event["extension"] if e["url"] != HASH_URL]
        for extension in event["extension"]:
            if extension["url"] == PREVIOUS_HASH_URL:
                extension["valueString"] = previous
        previous = chain_hash(previous, event)
        event["extension"].append({"url": HASH_URL, "valueString": previous})
        raw.set_body(EVENT_TYPE, event_id(seq), orjson.dumps(event))
    raw.set_body(HEAD_TYPE, HEAD_ID, orjson.dumps({**head, "hash": previous}))

    result = verify(store_url)
    assert result.returncode == 1
    assert "AuditEvent/000000000003 does not match its hash" in result.stdout
    assert "Traceback" not in result.stderr


def test_deleting_the_last_events_and_rewinding_the_head_fails_verify(
    client: TestClient, store_url: str
):
    _some_events(client)
    raw = RawDatabase(store_url)
    head = raw.head()
    last = head["seq"]
    keep = last - 3
    for seq in range(keep + 1, last + 1):
        raw.delete(EVENT_TYPE, event_id(seq))
    kept = raw.body(EVENT_TYPE, event_id(keep))
    raw.set_body(HEAD_TYPE, HEAD_ID, orjson.dumps({**head, "seq": keep, "hash": _own_hash(kept)}))

    result = verify(store_url)
    assert result.returncode == 1
    assert "events were removed" in result.stdout
    assert f"AuditEvent/{event_id(last)}" in result.stdout


def test_verify_reports_damaged_records_without_a_traceback(client: TestClient, store_url: str):
    _some_events(client)
    raw = RawDatabase(store_url)
    raw.set_body(EVENT_TYPE, event_id(2), b"{not json")
    no_hash = raw.body(EVENT_TYPE, event_id(4))
    del no_hash["extension"]
    raw.set_body(EVENT_TYPE, event_id(4), orjson.dumps(no_hash))
    raw.set_body(EVENT_TYPE, event_id(5), orjson.dumps(["an", "array"]))

    result = verify(store_url)
    assert result.returncode == 1
    assert "AuditEvent/000000000002 is not valid JSON" in result.stdout
    assert "AuditEvent/000000000004 is damaged" in result.stdout
    assert "AuditEvent/000000000005 is damaged" in result.stdout
    assert "Traceback" not in result.stderr

    raw.set_body(HEAD_TYPE, HEAD_ID, b'{"seq": "many"}')
    result = verify(store_url)
    assert result.returncode == 1
    assert "x-billable-audit-head/head (the chain head) is damaged" in result.stdout
    assert "Traceback" not in result.stderr


def test_the_key_is_a_private_file_outside_the_store(client: TestClient, store_url: str):
    _some_events(client, 1)
    key_file = default_key_file(store_url)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key_hex = key_file.read_text().strip()
    event = RawDatabase(store_url).body(EVENT_TYPE, event_id(1))
    assert key_hex not in orjson.dumps(event).decode()


def _legacy_chain(store_url: str, count: int) -> None:
    """AuditEvents exactly as the release before keying wrote them (plain SHA-256)."""

    async def write() -> None:
        store = create_store(store_url)
        await store.open()
        try:
            previous, writes = GENESIS, []
            for seq in range(1, count + 1):
                record = AuditRecord("R", "read", 200, "old-client", None, "10.0.0.1", "Claim/x")
                event = build_event(record, "2026-11-01T00:00:00.000000Z")
                event["id"] = event_id(seq)
                event["meta"] = {"versionId": "1", "lastUpdated": event["recorded"]}
                event["extension"] = [{"url": PREVIOUS_HASH_URL, "valueString": previous}]
                previous = chain_hash(previous, event)
                event["extension"].append({"url": HASH_URL, "valueString": previous})
                writes.append(
                    Write(EVENT_TYPE, event_id(seq), 0, 1, event["recorded"], orjson.dumps(event))
                )
            head = orjson.dumps({"seq": count, "hash": previous})
            writes.append(Write(HEAD_TYPE, HEAD_ID, 0, 1, "2026-11-01T00:00:00.000000Z", head))
            await store.commit(writes)
        finally:
            await store.close()

    asyncio.run(write())


def _append(store_url: str, count: int) -> None:
    async def write() -> None:
        store = create_store(store_url)
        await store.open()
        try:
            trail = AuditTrail(Repository(store), audit_seal(Settings(store_url=store_url)))
            record = AuditRecord("R", "read", 200, "new-client", None, "10.0.0.2", "Claim/y")
            for _ in range(count):
                await trail.append(record)
        finally:
            await store.close()

    asyncio.run(write())


@pytest.fixture
def legacy_store(store_url: str) -> str:
    _legacy_chain(store_url, 5)
    return store_url


def test_a_chain_of_the_last_release_verifies_and_continues_keyed(legacy_store: str):
    before = verify(legacy_store)
    assert before.returncode == 0, before.stdout
    assert "5 written before keying" in before.stdout
    _append(legacy_store, 3)
    after = verify(legacy_store)
    assert after.returncode == 0, after.stdout
    assert "(8 events, 5 written before keying)" in after.stdout
    keyed = RawDatabase(legacy_store).body(EVENT_TYPE, event_id(6))
    assert keyed["extension"][0]["valueString"] == _own_hash(
        RawDatabase(legacy_store).body(EVENT_TYPE, event_id(5))
    )


def test_old_events_cannot_be_rewritten_once_the_chain_is_keyed(legacy_store: str):
    _append(legacy_store, 2)
    raw = RawDatabase(legacy_store)
    # Rewrite legacy event 2 and recompute the legacy hashes after it.
    previous = _own_hash(raw.body(EVENT_TYPE, event_id(1)))
    for seq in range(2, 6):
        event = raw.body(EVENT_TYPE, event_id(seq))
        if seq == 2:
            event["agent"][0]["who"]["identifier"]["value"] = "someone-else"
        event["extension"] = [
            {"url": PREVIOUS_HASH_URL, "valueString": previous},
        ]
        previous = chain_hash(previous, event)
        event["extension"].append({"url": HASH_URL, "valueString": previous})
        raw.set_body(EVENT_TYPE, event_id(seq), orjson.dumps(event))
    result = verify(legacy_store)
    assert result.returncode == 1
    assert "AuditEvent/000000000006 does not follow the event before it" in result.stdout


def test_a_keyed_chain_cannot_be_passed_off_as_an_old_unkeyed_one(legacy_store: str):
    _append(legacy_store, 3)
    raw = RawDatabase(legacy_store)
    # Remove the keyed events, rewrite them unkeyed, rewind nothing: all plain SHA-256.
    previous = _own_hash(raw.body(EVENT_TYPE, event_id(5)))
    for seq in range(6, 9):
        event = raw.body(EVENT_TYPE, event_id(seq))
        event["extension"] = [{"url": PREVIOUS_HASH_URL, "valueString": previous}]
        previous = chain_hash(previous, event)
        event["extension"].append({"url": HASH_URL, "valueString": previous})
        raw.set_body(EVENT_TYPE, event_id(seq), orjson.dumps(event))
    raw.set_body(HEAD_TYPE, HEAD_ID, orjson.dumps({"seq": 8, "hash": previous}))
    result = verify(legacy_store)
    assert result.returncode == 1
    assert "AuditEvent/000000000006 has no keyed hash" in result.stdout
    assert "AuditEvent/000000000006 does not match" not in result.stdout


def test_verify_without_the_key_file_reports_instead_of_making_a_new_key(
    client: TestClient, store_url: str, tmp_path: Path
):
    _some_events(client, 2)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            "audit",
            "verify",
            "--store",
            store_url,
            "--audit-key-file",
            str(tmp_path / "elsewhere" / "missing.key"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "is keyed but no audit key is configured" in result.stdout
    assert not (tmp_path / "elsewhere" / "missing.key").exists()
