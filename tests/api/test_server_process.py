"""A real `billable serve` process, spoken to over HTTP on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path):
    port = free_port()
    env = {**os.environ, "BILLABLE_STORE": f"sqlite:///{tmp_path / 'data' / 'billable.db'}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--auth", "off", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
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
        pytest.fail(f"server did not start: {proc.stdout.read() if proc.stdout else ''}")
    yield base, proc, tmp_path
    proc.terminate()
    proc.wait(timeout=10)


def test_served_over_http_create_then_read_a_patient(server):
    base, proc, tmp_path = server
    created = httpx.post(
        f"{base}/fhir/Patient",
        json={"resourceType": "Patient", "name": [{"family": "Curl"}]},
        headers={"Content-Type": "application/fhir+json"},
    )
    assert created.status_code == 201
    location = created.headers["location"]
    assert location.startswith(f"{base}/fhir/Patient/")
    read = httpx.get(location)
    assert read.status_code == 200
    assert read.json()["name"] == [{"family": "Curl"}]
    assert httpx.get(f"{base}/fhir/metadata").json()["fhirVersion"] == "4.0.1"
    assert (tmp_path / "data" / "billable.db").exists()


def test_start_up_warns_that_the_server_is_unauthenticated(server):
    base, proc, _ = server
    proc.terminate()
    output, _ = proc.communicate(timeout=10)
    assert "authentication is OFF" in output


def test_an_unusable_store_url_fails_fast_with_one_line(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--store", "postgres://nope"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "unsupported store URL" in result.stderr


def test_an_unknown_auth_mode_is_refused():
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--auth", "magic"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "magic" in result.stderr
