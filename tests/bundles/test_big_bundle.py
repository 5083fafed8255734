"""A real patient's history as one transaction, against a real server with default limits.

Marked ``slow`` (a 100 MB body and 40,000 writes; ~30-60 s on an idle 2-core machine):
``-m "not slow"`` leaves it out locally, ``make test`` runs it. SQLite only: the
FerretDB used in tests has no secondary indexes, so 40,000 conditional look-ups there
say nothing about MongoDB. ``bench/big_bundle.py`` prints the same run's figures.
"""

from __future__ import annotations

import http.client
from pathlib import Path

import orjson
import pytest

from bench._server import running_server
from bench.big_bundle import HEADERS, make_bundle
from bench.ingest_perf import memory_mib
from server.config import Settings

pytestmark = pytest.mark.slow


def _post(base: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=1800)
    conn.request("POST", "/fhir", body=body, headers=headers or HEADERS)
    response = conn.getresponse()
    answer = response.read()
    conn.close()
    return response.status, answer


def _count(base: str, rtype: str) -> int:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    conn.request("GET", f"/fhir/{rtype}?_summary=count")
    total = int(orjson.loads(conn.getresponse().read())["total"])
    conn.close()
    return total


def test_a_100_mb_40000_entry_transaction_is_accepted_by_default_with_memory_bounded(
    tmp_path: Path,
):
    body = make_bundle(100, 40_000)
    assert len(body) >= 100_000_000 * 0.99
    assert len(body) < Settings().max_bundle_bytes
    types = [e["resource"]["resourceType"] for e in orjson.loads(body)["entry"]]
    args = ("--log-level", "warning", "--coding", "manual", "--adjudication", "manual")
    with running_server(f"sqlite:///{tmp_path / 'big.db'}", args) as (base, pid):
        idle = memory_mib(pid, "VmRSS")
        status, answer = _post(base, body)
        assert status == 200, answer[:500]
        peak = memory_mib(pid, "VmHWM")
        response = orjson.loads(answer)
        assert len(response["entry"]) == 40_000
        assert all(e["response"]["status"].startswith("201") for e in response["entry"])
        for rtype in ("Observation", "DocumentReference", "Encounter"):
            assert _count(base, rtype) == types.count(rtype)
        # The whole-parse path held about ten times the body; the split path under five.
        # A loose bound, to catch a return to parsing 100 MB bundles whole.
        assert peak - idle < 8 * len(body) / 2**20


def test_a_bundle_over_the_limit_is_a_413_naming_the_setting(tmp_path: Path):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    filler = b" " * (3 * 2**20)  # whitespace is valid JSON: the size alone decides
    body = orjson.dumps(bundle)[:-1] + filler + b"}"
    env = {"BILLABLE_MAX_BUNDLE_MB": "2"}
    with running_server(f"sqlite:///{tmp_path / 'small.db'}", (), env) as (base, _pid):
        status, answer = _post(base, body)
        assert status == 413
        diagnostics = orjson.loads(answer)["issue"][0]["diagnostics"]
        assert "BILLABLE_MAX_BUNDLE_MB" in diagnostics
        assert _post(base, orjson.dumps(bundle))[0] == 200
