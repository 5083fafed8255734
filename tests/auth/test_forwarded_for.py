"""``X-Forwarded-For`` is believed only from a configured proxy (``--trusted-proxy``).

The audit trail records the network address of each request; a client that sends its
own ``X-Forwarded-For`` must not be able to choose that address. Against ``billable
serve`` over HTTP (uvicorn's proxy-header handling is what is configured).
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.auth.live import LiveServer, live_server

SPOOFED = "203.0.113.9"


def _address_audited_for(server: LiveServer, probe: str) -> str:
    auditor = {"Authorization": f"Bearer {server.backend_token('system/AuditEvent.rs')}"}
    token = {"Authorization": f"Bearer {server.backend_token('system/*.rs')}"}
    r = httpx.get(f"{server.fhir}/Claim/{probe}", headers={**token, "X-Forwarded-For": SPOOFED})
    assert r.status_code == 404
    history = httpx.get(f"{server.fhir}/AuditEvent/_history?_count=20", headers=auditor).json()
    event = next(
        e["resource"]
        for e in history["entry"]
        if e["resource"].get("entity", [{}])[0].get("what", {}).get("reference") == f"Claim/{probe}"
    )
    return str(event["agent"][0]["network"]["address"])


def test_x_forwarded_for_is_ignored_without_a_trusted_proxy(tmp_path: Path):
    for server in live_server(tmp_path):
        assert _address_audited_for(server, "probe-1") == "127.0.0.1"


def test_x_forwarded_for_is_believed_from_a_configured_proxy(tmp_path: Path):
    for server in live_server(tmp_path, ("--trusted-proxy", "127.0.0.1")):
        assert _address_audited_for(server, "probe-2") == SPOOFED
