"""The audit journal (``BILLABLE_AUDIT_JOURNAL=1``): answered requests are never lost.

With the journal on, a request is answered once its audit record is in the local journal
file, and the store gets it a moment later. These cases kill a real server process
(SIGKILL) while records wait, start it again, and find every record in the chain, once,
and the chain intact; they show that a replayed journal never writes an event twice,
and that an auditor reading AuditEvents sees every request answered before.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from bench._server import free_port
from server.app import create_app
from server.audit.chain import AuditRecord, AuditTrail
from server.audit.journal import AuditJournal
from server.audit.queue import JournaledTrail
from server.auth.setup import audit_seal
from server.config import Settings
from server.repository import Repository
from server.storage.factory import create_store, sqlite_path
from server.storage.sqlite_bodies import BodyCodec
from tests.auth.conftest import BASE, mint

# The server, with the flusher held back so that records are only in the journal.
SLOW_FLUSH = (
    "import sys; from server.audit.queue import JournaledTrail;"
    " JournaledTrail.FLUSH_DELAY_S = 60.0;"
    " from server.cli import main; sys.exit(main())"
)


def _serve(store_url: str, port: int, launcher: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BILLABLE_AUDIT_JOURNAL": "1", "BILLABLE_STORE": store_url}
    return subprocess.Popen(
        [sys.executable, *launcher, "serve", "--port", str(port), "--auth", "smart"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not start")


def _events_naming(store_url: str, marker: str) -> list[dict]:
    # Straight from the database file (bodies are compressed: decoded by the store's codec).
    codec = BodyCodec()
    with sqlite3.connect(sqlite_path(store_url)) as db:
        codec.load(db)
        rows = db.execute(
            "SELECT body FROM resource_versions WHERE type = 'AuditEvent' AND is_current = 1"
        ).fetchall()
        events = [orjson.loads(codec.decode(db, row[0]) or b"null") for row in rows]
    return [e for e in events if marker in orjson.dumps(e).decode()]


def _verify(store_url: str) -> list[str]:
    async def run() -> list[str]:
        store = create_store(store_url)
        await store.open()
        try:
            return await AuditTrail(
                Repository(store), audit_seal(Settings(store_url=store_url))
            ).verify()
        finally:
            await store.close()

    return asyncio.run(run())


def test_records_queued_when_the_server_is_killed_are_in_the_chain_after_restart(
    tmp_path: Path,
):
    store_url = f"sqlite:///{tmp_path / 'billable.db'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(store_url, port, ["-c", SLOW_FLUSH])
    try:
        _wait_up(base, proc)
        for n in range(12):  # refused (no token), and audited like any request
            assert httpx.get(f"{base}/fhir/Claim/killed-{n}").status_code == 401
        assert _events_naming(store_url, "Claim/killed-") == []  # only in the journal
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    journal = next(tmp_path.glob("billable.db.audit-key.journal-*"))
    assert journal.stat().st_size > 0

    proc = _serve(store_url, port, ["-m", "server.cli"])
    try:
        _wait_up(base, proc)
        httpx.get(f"{base}/fhir/Claim/after-restart")  # the first append opens the journal
    finally:
        proc.terminate()
        proc.wait(timeout=30)  # a clean stop commits what is queued
    found = _events_naming(store_url, "Claim/killed-")
    assert sorted(e["entity"][0]["what"]["reference"] for e in found) == sorted(
        f"Claim/killed-{n}" for n in range(12)
    )
    assert len(_events_naming(store_url, "Claim/after-restart")) == 1
    assert _verify(store_url) == []


def test_a_journal_replayed_after_its_commit_writes_no_event_twice(tmp_path: Path):
    store_url = f"sqlite:///{tmp_path / 'billable.db'}"
    seal = audit_seal(Settings(store_url=store_url))
    key_file = seal.anchor_file.with_name(seal.anchor_file.name.removesuffix(".anchor"))

    async def run() -> tuple[int, list[str]]:
        store = create_store(store_url)
        await store.open()
        try:
            first = JournaledTrail(Repository(store), seal, AuditJournal(key_file))
            for n in range(5):
                await first.append(AuditRecord("R", "read", 200, "c", None, "::1", f"Claim/r{n}"))
            journal_path = first.journal.path
            assert journal_path is not None
            written = journal_path.read_bytes()
            await first.flushed()
            # A crash between the store's commit and the journal's truncation:
            journal_path.write_bytes(written)
            first.journal.close()
            second = JournaledTrail(Repository(store), seal, AuditJournal(key_file))
            await second.append(AuditRecord("R", "read", 200, "c", None, "::1", "Claim/next"))
            await second.close()
            report = await second.check()
            return report.events, report.problems
        finally:
            await store.close()

    events, problems = asyncio.run(run())
    assert (events, problems) == (6, [])
    assert len(_events_naming(store_url, "Claim/r")) == 5


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_an_auditor_sees_every_request_answered_before_theirs(
    registered: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("BILLABLE_AUDIT_JOURNAL", "1")
    monkeypatch.setattr(JournaledTrail, "FLUSH_DELAY_S", 60.0)  # nothing commits by itself
    app = create_app(Settings(store_url=registered, auth="smart"))
    with TestClient(app, base_url=BASE) as client:
        assert client.app.state.security.audit.journaled  # type: ignore[attr-defined]
        client.get("/auth/jwks")  # loads (first: makes) the signing keys
        reader = mint(client, "system/*.rs")
        for n in range(10):
            client.get(f"/fhir/Claim/seen-{n}", headers=reader)
        auditor = mint(client, "system/AuditEvent.rs")
        bundle = client.get("/fhir/AuditEvent?_count=200", headers=auditor).json()
        seen = {
            e["resource"]["entity"][0]["what"]["reference"]
            for e in bundle.get("entry", [])
            if e["resource"].get("entity") and "what" in e["resource"]["entity"][0]
        }
        assert {f"Claim/seen-{n}" for n in range(10)} <= seen
