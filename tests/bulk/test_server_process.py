"""$export against a real `billable serve` (uvicorn) process over loopback HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.api.test_server_process import free_port

FHIR_JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    env = {
        **os.environ,
        "BILLABLE_STORE": f"sqlite:///{tmp_path / 'billable.db'}",
        "BILLABLE_EXPORT_DIR": str(tmp_path / "export"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--auth", "off", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("server did not start")
    yield base, tmp_path / "export"
    proc.terminate()
    proc.wait(timeout=15)


def test_export_over_http_from_a_server_process(server: tuple[str, Path]) -> None:
    base, export_dir = server
    with httpx.Client(base_url=f"{base}/fhir", timeout=10) as http:
        for i in range(5):
            patient = {"resourceType": "Patient", "id": f"pt{i}", "gender": "female"}
            assert http.put(f"/Patient/pt{i}", json=patient, headers=FHIR_JSON).status_code == 201
        kick = http.get(
            "/$export",
            params={"_type": "Patient", "_outputFormat": "application/fhir+ndjson"},
            headers={"Prefer": "respond-async", "Accept": "application/fhir+json"},
        )
        assert kick.status_code == 202, kick.text
        status_url = kick.headers["content-location"]
        assert status_url.startswith(f"{base}/fhir/$export-status/")
        deadline = time.monotonic() + 60
        while True:
            status = http.get(status_url)
            if status.status_code == 200:
                break
            assert status.status_code == 202, status.text
            assert time.monotonic() < deadline
            time.sleep(int(status.headers["retry-after"]))  # as a well-behaved client does
        manifest = status.json()
        assert manifest["requiresAccessToken"] is False  # --auth off
        [output] = manifest["output"]
        assert output["type"] == "Patient" and output["count"] == 5
        body = http.get(output["url"])
        assert body.headers["content-type"].startswith("application/fhir+ndjson")
        lines = [orjson.loads(line) for line in body.content.splitlines()]
        assert sorted(p["id"] for p in lines) == [f"pt{i}" for i in range(5)]
        assert any(export_dir.iterdir())
        assert http.delete(status_url).status_code == 202
        assert http.get(status_url).status_code == 404
