"""Audit lanes: every process appends to a hash chain of its own, anchored together.

Two real ``billable serve`` processes on one store (SQLite, and MongoDB through FerretDB)
each append their requests' events to their own lane; the whole trail then verifies,
every request's event is there exactly once, and an auditor's AuditEvent search returns
the events of every lane. An insider who edits an event of lane 1, deletes lane 1's
last events or all of lane 1 is reported by ``billable audit verify`` (the real
command). A lane is held by a real process and taken over by the next one once it
ends, even killed; a store written before lanes verifies and keeps growing.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from joserfc.jwk import KeySet, RSAKey

from server.audit.chain import (
    EVENT_TYPE,
    GENESIS,
    HASH_URL,
    HEAD_TYPE,
    KEY_URL,
    PREVIOUS_HASH_URL,
    AuditRecord,
    AuditTrail,
    build_event,
    canonical,
)
from server.audit.lanes import event_id, head_id
from server.audit.seal import ANCHOR_SIZE, AuditSeal, default_key_file
from server.audit.verify import lanes_in_store
from server.repository import Repository
from server.storage.factory import create_store
from server.storage.port import Write
from tests.auth.live import LiveServer, cli, free_port
from tests.auth.test_audit_seal import RawDatabase, _own_hash

FHIR_JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture(params=["sqlite", "mongo"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'billable.db'}"
        return
    url = str(request.getfixturevalue("mongo_db_uri"))
    yield url
    key_file = default_key_file(url)  # ./data for MongoDB: remove this test's
    for path in (key_file, key_file.with_name(key_file.name + ".anchor")):
        path.unlink(missing_ok=True)


def scaled(store_url: str, n: int) -> int:
    """FerretDB's SQLite handler writes a few resources a second: fewer requests there."""
    return n if store_url.startswith("sqlite") else max(4, n // 6)


def verify(store_url: str, key_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--audit-key-file", str(key_file)] if key_file else []
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "audit", "verify", "--store", store_url, *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )


def stored_events(store_url: str) -> dict[str, dict[str, Any]]:
    """Every AuditEvent of every lane, by id, read through the store's port."""

    async def run() -> dict[str, dict[str, Any]]:
        store = create_store(store_url)
        await store.open()
        try:
            found: dict[str, dict[str, Any]] = {}
            for lane, head in (await lanes_in_store(Repository(store).records)).items():
                last = int(orjson.loads(head.body)["seq"]) if head and head.body else 0
                for seq in range(1, last + 1):
                    stored = await store.read(EVENT_TYPE, event_id(seq, lane))
                    assert stored is not None and stored.body is not None
                    found[stored.id] = orjson.loads(stored.body)
            return found
        finally:
            await store.close()

    return asyncio.run(run())


def _entity(event: dict[str, Any]) -> str | None:
    for entity in event.get("entity", []):
        if "what" in entity:
            return str(entity["what"]["reference"])
    return None


# ----------------------------------------------------------- two real server processes
# The server with the journal's flusher held back: records stay in the journal only.
SLOW_FLUSH = (
    "import sys; from server.audit.queue import JournaledTrail;"
    " JournaledTrail.FLUSH_DELAY_S = 60.0;"
    " from server.cli import main; sys.exit(main())"
)
CLI = ("-m", "server.cli")


def _serve(
    port: int,
    store_url: str,
    key_file: Path,
    public: str,
    env: dict[str, str],
    launcher: tuple[str, ...] = CLI,
) -> Any:
    log = open(key_file.parent / f"server-{port}.log", "a")  # noqa: SIM115 (the child's)
    return subprocess.Popen(
        [sys.executable, *launcher, "serve", "--port", str(port), "--store",
         store_url, "--audit-key-file", str(key_file), "--base-url", public],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
    )  # fmt: skip


def _wait(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server at {base} did not start")


def _two_servers_append(
    store_url: str,
    tmp_path: Path,
    n: int,
    env: dict[str, str],
    launcher: tuple[str, ...] = CLI,
    kill: bool = False,
) -> tuple[Path, list[str], list[dict[str, Any]]]:
    """Two ``serve`` processes on one store, ``n`` reads through each at once (each read
    names its own missing Patient); then an auditor's search of every AuditEvent, sorted
    by date, through one of them (``kill``: none, and both are killed instead of
    stopped). The key file, the read ids and the search's events."""
    key = RSAKey.generate_key(2048, parameters={"kid": "payer-key"})
    jwks = tmp_path / "payer.jwks.json"
    jwks.write_text(json.dumps(KeySet([key]).as_dict(private=False)))
    scope = "system/*.rs system/AuditEvent.rs"
    cli("clients", "add", "payer", "--kind", "backend", "--jwks", str(jwks), "--scope", scope,
        "--store", store_url)  # fmt: skip
    key_file = tmp_path / "data" / "audit.key"
    key_file.parent.mkdir(exist_ok=True)
    ports = free_port(), free_port()
    public = f"http://127.0.0.1:{ports[0]}/fhir"  # one public base, as behind a balancer
    processes = [_serve(port, store_url, key_file, public, env, launcher) for port in ports]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for base, process in zip(bases, processes, strict=True):
            _wait(base, process)
        server = LiveServer(bases[0], public, store_url, key, None, processes[0])  # type: ignore[arg-type]
        headers = {**FHIR_JSON, "Authorization": f"Bearer {server.backend_token(scope)}"}
        reads = [f"lane-probe-{i}" for i in range(2 * n)]

        def read(i: int) -> int:
            base = bases[i % 2]
            r = httpx.get(f"{base}/fhir/Patient/{reads[i]}", headers=headers, timeout=60)
            return r.status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(read, range(2 * n))) == {404}
        if kill:
            for process in processes:
                process.send_signal(signal.SIGKILL)
            return key_file, reads, []
        bundle = httpx.get(
            f"{bases[1]}/fhir/AuditEvent",
            params={"_sort": "date", "_count": "1000"},
            headers=headers,
            timeout=120,
        ).json()
        searched = [e["resource"] for e in bundle.get("entry", [])]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
    return key_file, reads, searched


def test_two_server_processes_append_to_two_lanes_and_every_request_is_audited_once(
    store_url: str, tmp_path: Path
) -> None:
    n = scaled(store_url, 30)
    key_file, reads, searched = _two_servers_append(store_url, tmp_path, n, {})
    events = stored_events(store_url)
    # Each process wrote a lane of its own: lane 0 (the plain ids) and lane 1.
    assert any(rid.startswith("L01-") for rid in events)
    assert any(rid.isdigit() for rid in events)
    counted = Counter(_entity(e) for e in events.values())
    assert all(counted[f"Patient/{rid}"] == 1 for rid in reads), counted
    # The auditor's search returns the events of both lanes, in date order.
    found = Counter(_entity(e) for e in searched)
    assert all(found[f"Patient/{rid}"] == 1 for rid in reads), found
    assert {e["id"][:4] for e in searched if e["id"].startswith("L")} == {"L01-"}
    recorded = [e["recorded"] for e in searched]
    assert recorded == sorted(recorded)
    result = verify(store_url, key_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audit chain intact" in result.stdout and "in 2 lanes" in result.stdout
    assert f"({len(events)} events" in result.stdout


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_two_journaled_server_processes_each_keep_their_own_journal(
    store_url: str, tmp_path: Path
) -> None:
    """``BILLABLE_AUDIT_JOURNAL=1``: each process queues in the journal of its lane."""
    key_file, reads, searched = _two_servers_append(
        store_url, tmp_path, 12, {"BILLABLE_AUDIT_JOURNAL": "1"}
    )
    journals = sorted(p.name for p in key_file.parent.glob("audit.key.journal-*"))
    assert journals[:2] == ["audit.key.journal-1", "audit.key.journal-2"]
    assert "audit.key.journal-id" in journals
    counted = Counter(_entity(e) for e in stored_events(store_url).values())
    assert all(counted[f"Patient/{rid}"] == 1 for rid in reads)
    assert all(Counter(_entity(e) for e in searched)[f"Patient/{rid}"] == 1 for rid in reads)
    result = verify(store_url, key_file)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_journals_of_two_killed_processes_are_committed_by_the_one_started_next(
    store_url: str, tmp_path: Path
) -> None:
    """Both processes are killed with records only in their journals; one process
    started afterwards commits both journals (its own slot's, and the other no live
    process holds), each record once."""
    env = {"BILLABLE_AUDIT_JOURNAL": "1"}
    key_file, reads, _ = _two_servers_append(store_url, tmp_path, 6, env, ("-c", SLOW_FLUSH), True)
    journals = [key_file.with_name(f"audit.key.journal-{slot}") for slot in (1, 2)]
    assert all(path.stat().st_size > 0 for path in journals)
    assert not any(
        f"Patient/{rid}" in map(_entity, stored_events(store_url).values()) for rid in reads
    )
    port = free_port()
    process = _serve(port, store_url, key_file, f"http://127.0.0.1:{port}/fhir", env)
    try:
        _wait(f"http://127.0.0.1:{port}", process)
        httpx.get(f"http://127.0.0.1:{port}/fhir/Patient/after-restart", timeout=60)
    finally:
        process.terminate()
        process.wait(timeout=60)
    counted = Counter(_entity(e) for e in stored_events(store_url).values())
    assert all(counted[f"Patient/{rid}"] == 1 for rid in reads), counted
    assert counted["Patient/after-restart"] == 1
    assert all(path.stat().st_size == 0 for path in journals)
    result = verify(store_url, key_file)
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------ an insider's edits
def _two_lanes(store_url: str, per_lane: int = 5) -> None:
    """Two trails in this process on one store: each claims a lane of its own."""

    async def run() -> None:
        store = create_store(store_url)
        await store.open()
        try:
            seal = AuditSeal.open(default_key_file(store_url))
            trails = [AuditTrail(Repository(store), seal), AuditTrail(Repository(store), seal)]
            for i in range(per_lane):
                for lane, trail in enumerate(trails):
                    record = AuditRecord("R", "read", 200, "c", None, "::1", f"Claim/l{lane}-{i}")
                    await trail.append(record)
            assert [t.lane for t in trails] == [0, 1]
            for trail in trails:
                await trail.close()
        finally:
            await store.close()

    asyncio.run(run())


def test_editing_an_event_of_lane_1_fails_verify(store_url: str) -> None:
    _two_lanes(store_url)
    assert verify(store_url).returncode == 0
    raw = RawDatabase(store_url)
    event = raw.body(EVENT_TYPE, event_id(2, 1))
    event["outcome"] = "8"
    raw.set_body(EVENT_TYPE, event_id(2, 1), orjson.dumps(event))
    result = verify(store_url)
    assert result.returncode == 1
    assert "AuditEvent/L01-000000000002 does not match its hash" in result.stdout
    assert "AuditEvent/0000" not in result.stdout  # lane 0 is intact


def test_deleting_the_last_events_of_lane_1_and_rewinding_its_head_fails_verify(
    store_url: str,
) -> None:
    _two_lanes(store_url)
    raw = RawDatabase(store_url)
    head = raw.body(HEAD_TYPE, head_id(1))
    assert head["seq"] == 5
    for seq in (4, 5):
        raw.delete(EVENT_TYPE, event_id(seq, 1))
    kept = _own_hash(raw.body(EVENT_TYPE, event_id(3, 1)))
    raw.set_body(HEAD_TYPE, head_id(1), orjson.dumps({**head, "seq": 3, "hash": kept}))
    result = verify(store_url)
    assert result.returncode == 1
    assert "events were removed" in result.stdout
    assert "AuditEvent/L01-000000000005 was written" in result.stdout


def test_deleting_all_of_lane_1_fails_verify(store_url: str) -> None:
    _two_lanes(store_url)
    raw = RawDatabase(store_url)
    for seq in range(1, 6):
        raw.delete(EVENT_TYPE, event_id(seq, 1))
    raw.delete(HEAD_TYPE, head_id(1))
    result = verify(store_url)
    assert result.returncode == 1
    assert "lane L01 has no events in the store" in result.stdout
    assert "the lane was removed" in result.stdout


def test_deleting_only_the_head_of_lane_1_fails_verify(store_url: str) -> None:
    _two_lanes(store_url)
    RawDatabase(store_url).delete(HEAD_TYPE, head_id(1))
    result = verify(store_url)
    assert result.returncode == 1
    assert "x-billable-audit-head/head-L01 (the head of lane L01) is missing" in result.stdout


def test_a_lane_without_an_anchor_is_reported(store_url: str) -> None:
    """The anchor is what shows a lane was cut: a lane it does not know cannot be
    checked for that (its slot was wiped, or another machine wrote it)."""
    _two_lanes(store_url)
    anchor = default_key_file(store_url).with_name(default_key_file(store_url).name + ".anchor")
    with anchor.open("r+b") as out:
        out.seek(ANCHOR_SIZE)
        out.write(b" " * ANCHOR_SIZE)
    result = verify(store_url)
    assert result.returncode == 1
    assert "no audit anchor for lane L01" in result.stdout


# ------------------------------------------------------------ a lane held by a process
APPENDER = r"""
import asyncio, os, signal, sys
from server.audit.chain import AuditRecord, AuditTrail
from server.audit.seal import AuditSeal, default_key_file
from server.repository import Repository
from server.storage.factory import create_store

async def main(store_url, count, then):
    store = create_store(store_url)
    await store.open()
    trail = AuditTrail(Repository(store), AuditSeal.open(default_key_file(store_url)))
    ids = [await trail.append(AuditRecord("R", "read", 200, "c", None, "::1", "Claim/x"))
           for _ in range(count)]
    print(trail.lane, " ".join(ids), flush=True)
    if then == "die":
        os.kill(os.getpid(), signal.SIGKILL)  # no close, no clean exit
    await trail.close()
    await store.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
"""


def _appender(store_url: str, count: int, then: str = "exit") -> tuple[int, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", APPENDER, store_url, str(count), then],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == (-signal.SIGKILL if then == "die" else 0), done.stderr
    lane, *ids = done.stdout.split()
    return int(lane), ids


def test_a_lane_is_held_for_the_life_of_its_process_and_taken_over_by_the_next(
    store_url: str,
) -> None:
    async def hold_lane_0_while(work: Any) -> tuple[int | None, Any]:
        store = create_store(store_url)
        await store.open()
        try:
            trail = AuditTrail(Repository(store), AuditSeal.open(default_key_file(store_url)))
            trail.claim_lane()
            result = await asyncio.to_thread(work)
            lane = trail.lane
            await trail.close()
            return lane, result
        finally:
            await store.close()

    def children() -> list[tuple[int, list[str]]]:
        return [
            _appender(store_url, 2),  # ends cleanly: its lane is free again
            _appender(store_url, 2, "die"),  # killed: the kernel lets its lane go
            _appender(store_url, 1),
        ]

    held, runs = asyncio.run(hold_lane_0_while(children))
    assert held == 0
    # Lane 0 was held here, so every child took lane 1, and each continued its chain.
    assert runs == [
        (1, ["L01-000000000001", "L01-000000000002"]),
        (1, ["L01-000000000003", "L01-000000000004"]),
        (1, ["L01-000000000005"]),
    ]
    # With nothing held, the next process takes lane 0 (the plain ids).
    assert _appender(store_url, 1) == (0, ["000000000001"])
    result = verify(store_url)
    assert result.returncode == 0, result.stdout
    assert "(6 events) in 2 lanes" in result.stdout
    assert "lane L01: 5 events" in result.stdout


# ---------------------------------------------------------- a store written before lanes
def _store_before_lanes(store_url: str, count: int) -> AuditSeal:
    """A keyed chain exactly as the release before lanes wrote it: ids ``n`` zero-padded,
    one head ``x-billable-audit-head/head``, and an anchor of one 256-byte record."""
    seal = AuditSeal.open(default_key_file(store_url))

    async def write() -> None:
        store = create_store(store_url)
        await store.open()
        try:
            previous, writes = GENESIS, []
            for seq in range(1, count + 1):
                record = AuditRecord("R", "read", 200, "old", None, "10.0.0.1", f"Claim/o{seq}")
                event = build_event(record, "2026-11-20T00:00:00.000000Z")
                event["id"] = f"{seq:012d}"
                event["meta"] = {"versionId": "1", "lastUpdated": event["recorded"]}
                event["extension"] = [
                    {"url": PREVIOUS_HASH_URL, "valueString": previous},
                    {"url": KEY_URL, "valueString": seal.key_id},
                ]
                previous = seal.mac(previous, canonical(event))
                event["extension"].append({"url": HASH_URL, "valueString": previous})
                body = orjson.dumps(event)
                writes.append(Write(EVENT_TYPE, event["id"], 0, 1, event["recorded"], body))
            head = orjson.dumps({"seq": count, "hash": previous, "keyed_after": 0})
            writes.append(Write(HEAD_TYPE, "head", 0, 1, "2026-11-20T00:00:00.000000Z", head))
            await store.commit(writes)
        finally:
            await store.close()

    asyncio.run(write())
    record = orjson.dumps({"seq": count, "hash": previous_hash(store_url), "keyed_after": 0})
    seal.anchor_file.write_bytes(record.ljust(ANCHOR_SIZE))
    return seal


def previous_hash(store_url: str) -> str:
    return str(RawDatabase(store_url).body(HEAD_TYPE, "head")["hash"])


def test_a_store_written_before_lanes_verifies_and_its_chain_keeps_growing(
    store_url: str,
) -> None:
    _store_before_lanes(store_url, 4)
    before = verify(store_url)
    assert before.returncode == 0, before.stdout
    assert "audit chain intact (4 events)" in before.stdout
    _two_lanes(store_url, per_lane=2)  # lane 0 continues the old chain; lane 1 is new
    raw = RawDatabase(store_url)
    fifth = raw.body(EVENT_TYPE, "000000000005")
    assert fifth["extension"][0]["valueString"] == _own_hash(raw.body(EVENT_TYPE, "000000000004"))
    assert raw.body(HEAD_TYPE, "head")["seq"] == 6
    after = verify(store_url)
    assert after.returncode == 0, after.stdout
    assert "(8 events) in 2 lanes" in after.stdout
    # Cutting the old chain short is still caught by its anchor (lane 0's slot).
    raw.delete(EVENT_TYPE, "000000000006")
    head = raw.body(HEAD_TYPE, "head")
    raw.set_body(HEAD_TYPE, "head", orjson.dumps({**head, "seq": 5, "hash": _own_hash(fifth)}))
    cut = verify(store_url)
    assert cut.returncode == 1
    assert "AuditEvent/000000000006 was written" in cut.stdout
