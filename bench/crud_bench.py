"""Create, read and update throughput of ~2.7 KB Claims against a real server process.

Usage: python -m bench.crud_bench [--requests N] [--clients C] [--backends sqlite,mongo]
Runs the same workload on each backend in one run (MongoDB through a private FerretDB,
or BILLABLE_TEST_MONGO_URI) and prints requests/s, p50 and p99 latency per phase and the
RSS of the idle server process. Figures only; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench._server import rss_mib, running_server

HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def claim(n: int) -> dict[str, Any]:
    """A professional Claim of about 2 KB (8 service lines)."""
    return {
        "resourceType": "Claim",
        "status": "active",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                    "code": "professional",
                }
            ]
        },
        "use": "claim",
        "patient": {"reference": f"Patient/p{n % 500}"},
        "billablePeriod": {"start": "2026-11-02T09:00:00Z", "end": "2026-11-02T09:30:00Z"},
        "created": "2026-11-02",
        "provider": {"reference": "Organization/o1"},
        "priority": {"coding": [{"code": "normal"}]},
        "diagnosis": [
            {
                "sequence": 1,
                "diagnosisCodeableConcept": {
                    "coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]
                },
            }
        ],
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/c1"}}],
        "item": [
            {
                "sequence": i + 1,
                "diagnosisSequence": [1],
                "productOrService": {
                    "coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "99213"}]
                },
                "servicedDate": "2026-11-02",
                "quantity": {"value": 1},
                "unitPrice": {"value": 92.5, "currency": "USD"},
                "net": {"value": 92.5, "currency": "USD"},
            }
            for i in range(8)
        ],
    }


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def phase(name: str, n: int, clients: int, call) -> list[str]:
    latencies: list[float] = []
    results: list[str] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            t = time.perf_counter()
            results.append(await call(i))
            latencies.append((time.perf_counter() - t) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - start
    print(
        f"{name:7s} {n / elapsed:8.0f} req/s   p50 {statistics.median(latencies):6.2f} ms"
        f"   p99 {pct(latencies, 0.99):6.2f} ms   ({n} requests, {clients} clients)"
    )
    return results


async def run(base: str, n: int, clients: int) -> None:
    bodies = [orjson.dumps(claim(i)) for i in range(n)]
    print(f"body size {len(bodies[0])} bytes")
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=base, headers=HEADERS, limits=limits, timeout=120
    ) as http:

        async def create(i: int) -> str:
            r = await http.post("/fhir/Claim", content=bodies[i])
            assert r.status_code == 201, r.text
            return str(r.json()["id"])

        ids = await phase("create", n, clients, create)

        async def read(i: int) -> str:
            r = await http.get(f"/fhir/Claim/{ids[i % len(ids)]}")
            assert r.status_code == 200
            return ""

        await phase("read", n, clients, read)

        async def update(i: int) -> str:
            rid = ids[i % len(ids)]
            body = {**claim(i), "id": rid, "status": "active"}
            r = await http.put(f"/fhir/Claim/{rid}", content=orjson.dumps(body))
            assert r.status_code == 200, r.text
            return ""

        await phase("update", n, clients, update)


def bench_store(store: str, requests: int, clients: int) -> None:
    with running_server(store) as (base, pid):
        time.sleep(1)
        print(f"\n== store {store.split('?')[0]}")
        print(f"idle server RSS {rss_mib(pid):.1f} MiB")
        asyncio.run(run(base, requests, clients))
        print(f"server RSS after run {rss_mib(pid):.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--backends", default="sqlite,mongo")
    args = parser.parse_args()
    backends = args.backends.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        if "sqlite" in backends:
            bench_store(f"sqlite:///{Path(tmp) / 'bench.db'}", args.requests, args.clients)
        if "mongo" in backends:
            from tests.support.ferretdb import mongo_server, with_database

            with mongo_server() as uri:
                bench_store(with_database(uri, "bench"), args.requests, args.clients)


if __name__ == "__main__":
    main()
