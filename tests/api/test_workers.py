"""Several server processes over one store: ``billable serve --workers 2``, and two
``billable serve`` processes on the same SQLite file or MongoDB database.

Real processes, real HTTP, SMART auth on with real tokens, both backends. What must hold
across processes: a write through one is read at once through the other, version checks
(If-Match) decide between them, conditional creates racing through both create one
resource, and the audit chain both append to stays one intact chain.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pymongo
import pytest
from joserfc.jwk import KeySet, RSAKey

from tests.auth.live import LiveServer, cli, free_port, live_server
from tests.support.ferretdb import with_database

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def scaled(store_url: str, n: int) -> int:
    """Fewer requests on FerretDB (its SQLite handler writes a few resources a second;
    every audited request is a write): the same checks, a quarter of the traffic."""
    return n if store_url.startswith("sqlite") else max(4, n // 4)


@pytest.fixture(params=["sqlite", "mongo"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "mongo":
        return str(request.getfixturevalue("mongo_db_uri"))
    (tmp_path / "data").mkdir(exist_ok=True)
    return f"sqlite:///{tmp_path / 'data' / 'billable.db'}"


def _workers(pid: int) -> list[int]:
    """The worker processes uvicorn's supervisor ``pid`` started (not multiprocessing's
    resource tracker)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            command = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"resource_tracker" not in command:
                found.append(int(child))
    return found


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


def _verify_audit(store_url: str, key_file: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "audit", "verify", "--store", store_url],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "BILLABLE_AUDIT_KEY_FILE": str(key_file)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


# ---------------------------------------------------------------- serve --workers 2
@pytest.fixture
def workers(tmp_path: Path, store_url: str) -> Iterator[LiveServer]:
    yield from live_server(tmp_path, ("--workers", "2"), store_url=store_url)


def test_serve_with_two_workers_answers_from_two_processes_over_one_store(
    workers: LiveServer, tmp_path: Path, store_url: str
) -> None:
    pids = _workers(workers.process.pid)
    assert len(pids) == 2
    token = workers.backend_token()
    headers = {**FHIR_JSON, "Authorization": f"Bearer {token}"}
    before = {pid: _cpu_seconds(pid) for pid in pids}

    def create_then_read(i: int) -> tuple[str, dict[str, object], dict[str, object]]:
        body = {"resourceType": "Patient", "name": [{"family": f"Worker{i}"}]}
        # A fresh connection per request, so the kernel may hand each to either process.
        created = httpx.post(f"{workers.fhir}/Patient", json=body, headers=headers, timeout=60)
        assert created.status_code == 201, created.text
        rid = created.json()["id"]
        read = httpx.get(f"{workers.fhir}/Patient/{rid}", headers=headers, timeout=60)
        assert read.status_code == 200, read.text
        return rid, created.json(), read.json()

    n = scaled(store_url, 40)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(create_then_read, range(n)))
    for _rid, created, read in results:
        assert read == created  # read your own write, whichever process answers
    ids = {rid for rid, _, _ in results}
    assert len(ids) == n
    found = httpx.get(
        f"{workers.fhir}/Patient",
        params={"_summary": "count", "family:contains": "Worker"},
        headers=headers,
        timeout=60,
    )
    assert found.json()["total"] == n
    # Both processes did work (each accepted connections of the 2n requests).
    assert all(_cpu_seconds(pid) > before[pid] for pid in pids)
    workers.process.terminate()
    workers.process.wait(timeout=30)
    report = _verify_audit(store_url, tmp_path / "data" / "audit.key")
    assert "audit chain intact" in report
    events = int(report.split("(")[1].split()[0])
    assert events >= 2 * n + 1  # every create, read, search (and the token) audited


# ---------------------------------------------------------------- two serve processes
@dataclass
class Pair:
    a: str  # FHIR base of process A
    b: str  # FHIR base of process B
    headers: dict[str, str]
    processes: list[subprocess.Popen[str]]
    store_url: str
    audit_key_file: Path


def _start(port: int, store_url: str, key_file: Path, base_url: str) -> subprocess.Popen[str]:
    log = open(key_file.parent / f"server-{port}.log", "w")  # noqa: SIM115 (the child's)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--port",
            str(port),
            "--store",
            store_url,
            "--audit-key-file",
            str(key_file),
            "--base-url",
            base_url,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait(base: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server at {base} did not start")


@pytest.fixture(scope="module", params=["sqlite", "mongo"])
def shared_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """One store (and directory) for the tests of the two-process pair: starting the
    processes is most of their cost, so they are started once per backend."""
    tmp_path = tmp_path_factory.mktemp("pair")
    (tmp_path / "data").mkdir()
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'billable.db'}", tmp_path
        return
    uri = str(request.getfixturevalue("mongo_uri"))
    database = f"test_{uuid.uuid4().hex[:16]}"
    yield with_database(uri, database), tmp_path
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(uri)
    try:
        client.drop_database(database)
    finally:
        client.close()


@pytest.fixture(scope="module")
def pair(shared_store: tuple[str, Path]) -> Iterator[Pair]:
    store_url, tmp_path = shared_store
    key = RSAKey.generate_key(2048, parameters={"kid": "payer-key"})
    jwks = tmp_path / "payer.jwks.json"
    jwks.write_text(json.dumps(KeySet([key]).as_dict(private=False)))
    scope = "system/*.cruds system/AuditEvent.rs"
    cli("clients", "add", "payer", "--kind", "backend", "--jwks", str(jwks), "--scope", scope,
        "--store", store_url)  # fmt: skip
    ports = free_port(), free_port()
    # One public base URL for both (as behind a load balancer): tokens are for it.
    public = f"http://127.0.0.1:{ports[0]}/fhir"
    key_file = tmp_path / "data" / "audit.key"
    key_file.parent.mkdir(exist_ok=True)
    processes = [_start(port, store_url, key_file, public) for port in ports]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for base, process in zip(bases, processes, strict=True):
            _wait(base, process)
        server = LiveServer(bases[0], public, store_url, key, None, processes[0])  # type: ignore[arg-type]
        token = server.backend_token(scope)
        yield Pair(
            f"{bases[0]}/fhir",
            f"{bases[1]}/fhir",
            {**FHIR_JSON, "Authorization": f"Bearer {token}"},
            processes,
            store_url,
            key_file,
        )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def test_a_write_through_one_process_is_read_at_once_through_the_other(pair: Pair) -> None:
    h = pair.headers
    http = httpx.Client(timeout=60)
    created = http.post(f"{pair.a}/Patient", json={"resourceType": "Patient"}, headers=h)
    assert created.status_code == 201
    rid = created.json()["id"]
    assert http.get(f"{pair.b}/Patient/{rid}", headers=h).json() == created.json()
    body = {"resourceType": "Patient", "id": rid, "active": True}
    updated = http.put(f"{pair.b}/Patient/{rid}", json=body, headers={**h, "If-Match": 'W/"1"'})
    assert updated.status_code == 200 and updated.json()["meta"]["versionId"] == "2"
    assert http.get(f"{pair.a}/Patient/{rid}", headers=h).json()["active"] is True
    # A's If-Match on the version B replaced loses: 412, and nothing is written.
    stale = http.put(f"{pair.a}/Patient/{rid}", json=body, headers={**h, "If-Match": 'W/"1"'})
    assert stale.status_code == 412
    history = http.get(f"{pair.b}/Patient/{rid}/_history", headers=h).json()
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]


def test_conditional_creates_racing_through_two_processes_create_one_resource(
    pair: Pair,
) -> None:
    """Rounds of the same conditional create sent at the same instant through both
    processes (and twice through each): every round creates exactly one Organization."""
    rounds = scaled(pair.store_url, 12)
    values = [uuid.uuid4().hex for _ in range(rounds)]
    barrier = threading.Barrier(4)
    clients = [httpx.Client(timeout=60) for _ in range(4)]

    def create(slot: int, value: str) -> tuple[int, str]:
        body = {
            "resourceType": "Organization",
            "identifier": [{"system": "urn:test:npi", "value": value}],
            "name": "Raced",
        }
        headers = {**pair.headers, "If-None-Exist": f"identifier=urn:test:npi|{value}"}
        base = pair.a if slot % 2 else pair.b
        barrier.wait()
        r = clients[slot].post(f"{base}/Organization", json=body, headers=headers)
        assert r.status_code in (200, 201), r.text
        return r.status_code, r.json()["id"]

    try:
        with ThreadPoolExecutor(4) as pool:
            for value in values:
                answers = list(pool.map(create, range(4), [value] * 4))
                assert sorted(status for status, _ in answers) == [200, 200, 200, 201]
                assert len({rid for _, rid in answers}) == 1
    finally:
        for client in clients:
            client.close()
    for value in values:
        found = httpx.get(
            f"{pair.b}/Organization",
            params={"identifier": f"urn:test:npi|{value}"},
            headers=pair.headers,
            timeout=60,
        ).json()
        assert found["total"] == 1


def test_two_processes_appending_at_once_keep_one_intact_audit_chain(pair: Pair) -> None:
    """(Runs after the other tests of the pair, whose requests are in the chain too.)"""

    def hit(i: int) -> int:
        base = pair.a if i % 2 else pair.b
        return httpx.get(
            f"{base}/Patient/missing-{i}", headers=pair.headers, timeout=60
        ).status_code

    n = scaled(pair.store_url, 60)
    with ThreadPoolExecutor(10) as pool:
        assert set(pool.map(hit, range(n))) == {404}
    # Verified by another process while both servers run (no request in flight).
    report = _verify_audit(pair.store_url, pair.audit_key_file)
    assert "audit chain intact" in report
    events = int(report.split("(")[1].split()[0])
    assert events >= n + 1  # the token request and every read, none lost
