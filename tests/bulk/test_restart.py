"""A job survives its server: a new app instance on the same store finishes it, exactly once."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from tests.auth.conftest import mint, put
from tests.bulk.conftest import claim, download, ids, kick_off, seed, wait_done

EXTRA = 20


def _slow_export(client: TestClient, export_dir: Path) -> tuple[str, dict[str, str], Path]:
    admin = seed(client)
    for i in range(EXTRA):
        assert put(client, admin, claim("p1", f"extra-{i:02d}")).status_code == 201
    service = client.app.state.bulk  # type: ignore[attr-defined]
    service.page_size, service.page_delay, service.checkpoint_seconds = 2, 0.1, 0.0
    service.lease_seconds = 1.0
    token = mint(client, "system/*.rs", client_id="reader")
    status_url = kick_off(client, token, "/fhir/$export?_type=Patient,Claim")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        progress = client.get(status_url, headers=token).headers.get("x-progress", "")
        found = re.search(r"(\d+) resources exported; type 2", progress)
        if found and int(found.group(1)) >= 6:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the job did not get going")
    return status_url, token, export_dir / status_url.rsplit("/", 1)[-1] / "Claim-1.ndjson"


def _check_complete(client: TestClient, status_url: str, token: dict[str, str]) -> None:
    manifest = wait_done(client, status_url, token)
    files = download(client, manifest, token)
    expected = sorted(["claim-p1", "claim-p2", *(f"extra-{i:02d}" for i in range(EXTRA))])
    assert ids(files["Claim"]) == expected  # every Claim, none twice
    assert ids(files["Patient"]) == ["p1", "p2"]


def test_a_restarted_server_resumes_an_unfinished_job(
    make_client: Callable[..., TestClient], export_dir: Path
) -> None:
    first = make_client()
    status_url, token, claim_file = _slow_export(first, export_dir)
    make_client.stop(first)  # type: ignore[attr-defined]
    assert claim_file.stat().st_size > 0
    # Lines written after the last checkpoint (as a crash would leave them) are dropped.
    with claim_file.open("ab") as handle:
        handle.write(b'{"resourceType":"Claim","id":"half-written"}\n')
    second = make_client()
    _check_complete(second, status_url, token)


def test_a_crashed_runner_s_job_is_taken_over_when_its_lease_runs_out(
    make_client: Callable[..., TestClient], export_dir: Path
) -> None:
    first = make_client()
    status_url, token, claim_file = _slow_export(first, export_dir)
    service = first.app.state.bulk  # type: ignore[attr-defined]

    async def crash() -> None:  # the runner dies mid-job: no checkpoint, the lease still held
        task = service._task
        task.cancel()
        # A store call in flight (a FerretDB round trip) finishes its cleanup first.
        await asyncio.wait({task}, timeout=30)

    first.portal.call(crash)  # type: ignore[union-attr]
    assert service._task.cancelled()
    with claim_file.open("ab") as handle:
        handle.write(b'{"resourceType":"Claim","id":"half-written"}\n')
    second = make_client()  # another process on the same store
    second.app.state.bulk.lease_seconds = 1.0  # type: ignore[attr-defined]
    _check_complete(second, status_url, token)
