"""Coder app figures: the queue page with 10,000 open review Tasks, and a claim page.

    .venv/bin/python -m bench.coder_app_bench [--tasks 10000] [--runs 30] [--store sqlite:///PATH]

What is measured is what a coder's browser waits for: ``GET /app/`` (the queue's first
page, 25 rows: one Task search with its Claims and Patients included, through the API
with the coder's token, rendered) and ``GET /app/claim/{id}`` (the claim, its Task,
Provenance, sources, decisions, ClaimResponse and the $translate look-ups of the trace),
against a real ``billable serve --auth smart``, signed in through the authorization server.

Set-up: the Synthea sample with payers (tests/webapp/sample.py) is loaded and coded, then
``--tasks`` open review Tasks with draft Claims (copies of a real draft claim; payers,
edits and ages varied) are loaded with ``billable load`` (NDJSON), so the queue holds
that many open Tasks. Figures: p50/p95 wall time per page (the machine may be shared:
wall times are for a loaded machine), and the server's CPU time per page from
``/proc/<pid>/stat`` (utime + stime, all threads).
"""

from __future__ import annotations

import argparse
import html
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench._server import free_port
from mappings.coding.model import EDIT_SYSTEM
from mappings.coding.service import TASK_CODE
from mappings.coding.worklist import PAYER_GROUP
from server.webapp import CODER_SCOPES
from tests.support.serve import stop, wait_until_healthy
from tests.webapp.sample import build_sample

CODER, PASSWORD = "bench-coder", "bench-password-1"
EDITS = ["em-new-under-15", "code-not-billable", "ncci-review", "mue-capped", "no-price"]
PAYERS = ["synthea-payer-medicare", "synthea-payer-medicaid", "synthea-payer-aetna", "self-pay"]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _cli(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", *args], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"billable {args[0]}: {done.stderr[-2000:]}")


def _draft_claim(env: dict[str, str]) -> dict[str, Any]:
    import asyncio

    from mappings.coding.service import system_context
    from server.repository import Repository
    from server.search.parse import parse_search
    from server.storage.factory import create_store
    from server.storage.port import SearchQuery

    async def find() -> dict[str, Any]:
        store = create_store(env["BILLABLE_STORE"])
        await store.open()
        try:
            repo = Repository(store)
            parsed = parse_search(("Claim",), [("status", "draft")], strict=True)
            page = await repo.search(system_context(), SearchQuery(("Claim",), parsed.where))
            assert page.versions and page.versions[0].body is not None
            value: dict[str, Any] = orjson.loads(page.versions[0].body)
            return value
        finally:
            await store.close()

    return asyncio.run(find())


def seed_tasks(path: Path, claim: dict[str, Any], count: int, seed: int = 11) -> Path:
    """NDJSON of ``count`` draft Claims and their open review Tasks."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    lines: list[bytes] = []
    for i in range(count):
        cid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-claim-{i}"))
        copy = {k: v for k, v in claim.items() if k not in ("meta", "id")}
        copy["id"] = cid
        copy["identifier"] = [
            {"system": "https://billable.dev/fhir/claim-for-encounter", "value": f"bench-{i}"}
        ]
        edit = rng.choice(EDITS)
        authored = (now - timedelta(days=rng.randint(0, 90), minutes=i)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        task = {
            "resourceType": "Task",
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-task-{i}")),
            "status": rng.choice(["requested", "requested", "accepted"]),
            "intent": "order",
            "priority": "routine",
            "code": {"coding": [{"system": TASK_CODE, "code": "review-claim"}]},
            "description": f"bench claim {i}: {edit}",
            "focus": {"reference": f"Claim/{cid}"},
            "for": claim.get("patient"),
            "encounter": claim["item"][0]["encounter"][0] if claim.get("item") else None,
            "groupIdentifier": {"system": PAYER_GROUP, "value": rng.choice(PAYERS)},
            "businessStatus": {"coding": [{"system": EDIT_SYSTEM, "code": edit}]},
            "authoredOn": authored,
            "lastModified": authored,
        }
        lines.append(orjson.dumps(copy))
        lines.append(orjson.dumps({k: v for k, v in task.items() if v is not None}))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def sign_in(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, follow_redirects=False, timeout=120)
    authorize = client.get("/app/login").headers["location"]
    page = client.get(authorize).text
    token = re.search(r"name=request value='([^']+)'", page)
    assert token, page[:500]
    answer = client.post(
        "/auth/login",
        data={"request": html.unescape(token.group(1)), "username": CODER, "password": PASSWORD},
    )
    client.get(answer.headers["location"])  # the app's callback: the session cookie
    return client


def _time(client: httpx.Client, pid: int, path: str, runs: int) -> dict[str, float]:
    client.get(path)  # warm
    walls: list[float] = []
    cpu0 = cpu_seconds(pid)
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(path)
        walls.append(time.perf_counter() - started)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
    cpu = (cpu_seconds(pid) - cpu0) / runs
    walls.sort()
    return {
        "p50_ms": round(statistics.median(walls) * 1000, 1),
        "p95_ms": round(walls[max(0, int(len(walls) * 0.95) - 1)] * 1000, 1),
        "cpu_ms": round(cpu * 1000, 1),
    }


def figures(
    tasks: int = 10_000, runs: int = 30, store: str | None = None, **_other: object
) -> dict[str, object]:
    """Queue and claim page times with ``tasks`` open review Tasks (see the module doc);
    options this bench does not know (from ``bench/run_all.py``) are ignored."""
    work = Path(tempfile.mkdtemp(prefix="coder-app-bench-"))
    store_url = store or f"sqlite:///{work / 'billable.db'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "BILLABLE_STORE": store_url,
        "BILLABLE_TIMELY_FILING_DAYS": "0",
        "BILLABLE_EXPORT_DIR": str(work / "export"),
        "BILLABLE_PASSWORD": PASSWORD,
    }
    files = build_sample(work / "fed")
    _cli(env, "load", "--quiet", "--code", *map(str, files))
    claim = _draft_claim(env)
    started = time.perf_counter()
    _cli(env, "load", "--quiet", str(seed_tasks(work / "tasks.ndjson", claim, tasks)))
    seeded_s = time.perf_counter() - started
    _cli(env, "clients", "add", "billable-coder-app", "--kind", "app", "--scope", CODER_SCOPES,
         "--redirect-uri", f"{base}/app/callback")  # fmt: skip
    _cli(env, "users", "add", CODER)
    log = open(work / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--port",
            str(port),
            "--auth",
            "smart",
            "--base-url",
            f"{base}/fhir",
        ],  # fmt: skip
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_healthy(base, proc, lambda: (work / "serve.log").read_text()[-2000:], poll_s=0.2)
        time.sleep(5)  # let the terminology warm-up finish before timing
        client = sign_in(base)
        first = client.get("/app/").text
        cursor = re.search(r'href="(/app/\?[^"]*cursor=[^"]+)"', first)
        results = {
            "queue_first_page": _time(client, proc.pid, "/app/", runs),
            "queue_count (loaded after the page)": _time(
                client, proc.pid, "/app/queue-count", runs
            ),
            "queue_next_page": _time(client, proc.pid, html.unescape(cursor.group(1)), runs)
            if cursor
            else {},
            "queue_filtered_edit_payer": _time(
                client,
                proc.pid,
                "/app/?edit=ncci-review&payer=synthea-payer-medicare&sort=-age",
                runs,
            ),
            "queue_filtered_date_of_service": _time(
                client, proc.pid, "/app/?dos_from=2025-01-01&dos_to=2026-12-31", runs
            ),
            "claim_page": _time(client, proc.pid, f"/app/claim/{claim['id']}", runs),
            # Reads every claim, Task, ClaimResponse and Coverage (then cached for a
            # minute): a few runs only.
            "dashboard (rebuilt, ?fresh=1)": _time(
                client, proc.pid, "/app/dashboard?fresh=1", max(3, runs // 10)
            ),
        }
    finally:
        stop(proc, grace_s=20)
        log.close()
        shutil.rmtree(work, ignore_errors=True)  # the store, the seed and the sample
    return {
        "open_tasks": tasks,
        "runs": runs,
        "seed_seconds": round(seeded_s, 1),
        "queue_p50_ms": results["queue_first_page"]["p50_ms"],
        "claim_p50_ms": results["claim_page"]["p50_ms"],
        "pages": results,
        "store": store_url.split(":", 1)[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--store", default=None)
    args = parser.parse_args()
    result = figures(tasks=args.tasks, runs=args.runs, store=args.store)
    print(f"coder app, {result['open_tasks']} open review Tasks ({result['store']}), "
          f"{result['runs']} runs per page; wall on a shared machine")  # fmt: skip
    print(f"{'page':36} {'p50 ms':>9} {'p95 ms':>9} {'server CPU ms':>14}")
    pages: dict[str, dict[str, float]] = result["pages"]  # type: ignore[assignment]
    for name, values in pages.items():
        if values:
            p50, p95, cpu = values["p50_ms"], values["p95_ms"], values["cpu_ms"]
            print(f"{name:36} {p50:9.1f} {p95:9.1f} {cpu:14.1f}")
    print(f"(seeding {result['open_tasks']} Claims + Tasks took {result['seed_seconds']} s)")


if __name__ == "__main__":
    main()
