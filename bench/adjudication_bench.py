"""Adjudication speed: in process, and through ``POST /fhir/Claim/$submit``.

    python -m bench.adjudication_bench [--claims 400] [--members 40] [--clients 10]
                                       [--store URL] [--no-http]

In process: ``adjudicate_claim`` on stored 3-line professional claims (office visit,
lab panel, X-ray) spread over ``--members`` members on the default plan, first one at a
time, then all at once (``asyncio.gather``: claims of one member take turns, members run
concurrently). Through ``$submit``: a real ``billable serve`` process on a fresh SQLite
file, ``--clients`` concurrent HTTP clients each posting whole Claims (store + adjudicate
+ ClaimResponse/EOB written in one commit). Prints figures, never pass/fail.
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

from mappings.adjudication import adjudicate_claim
from server.repository import Repository, RequestContext
from server.storage.factory import create_store
from terminology.service import get_service

CTX = RequestContext(base_url="http://bench/fhir")
CPT = "http://www.ama-assn.org/go/cpt"


def coverage(member: int) -> dict[str, Any]:
    return {
        "resourceType": "Coverage",
        "id": f"cov-{member}",
        "status": "active",
        "beneficiary": {"reference": f"Patient/m{member}"},
        "subscriber": {"reference": f"Patient/m{member}"},
        "payor": [{"reference": "Organization/payer"}],
        "period": {"start": "2026-01-01", "end": "2026-12-31"},
    }


def claim(member: int, n: int) -> dict[str, Any]:
    day = f"2026-{1 + n % 12:02d}-{1 + n % 28:02d}"

    def item(seq: int, code: str, charge: float) -> dict[str, Any]:
        return {
            "sequence": seq,
            "productOrService": {"coding": [{"system": CPT, "code": code}]},
            "servicedDate": day,
            "quantity": {"value": 1},
            "net": {"value": charge, "currency": "USD"},
            "diagnosisSequence": [1],
        }

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
        "patient": {"reference": f"Patient/m{member}"},
        "created": day,
        "provider": {"reference": "Organization/clinic"},
        "priority": {"coding": [{"code": "normal"}]},
        "diagnosis": [
            {
                "sequence": 1,
                "diagnosisCodeableConcept": {
                    "coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "J20.9"}]
                },
            }
        ],
        "insurance": [
            {"sequence": 1, "focal": True, "coverage": {"reference": f"Coverage/cov-{member}"}}
        ],
        "item": [
            item(1, "99213", 150.0 + n % 7),
            item(2, "85025", 40.0),
            item(3, "71046", 120.0),
        ],
    }


async def in_process(store_url: str, claims: int, members: int) -> None:
    store = create_store(store_url)
    await store.open()
    repo = Repository(store)
    for m in range(members):
        await repo.update(CTX, "Coverage", f"cov-{m}", coverage(m))
    ids = []
    for n in range(claims * 2):
        created = await repo.create(CTX, "Claim", claim(n % members, n))
        assert created.version is not None
        ids.append(created.version.id)
    await adjudicate_claim(repo, CTX, ids[0])  # warm the terminology tables
    sequential = ids[1:claims]
    t0 = time.perf_counter()
    times = []
    for cid in sequential:
        t1 = time.perf_counter()
        await adjudicate_claim(repo, CTX, cid)
        times.append(time.perf_counter() - t1)
    elapsed = time.perf_counter() - t0
    print(
        f"in process, one at a time: {len(sequential)} claims in {elapsed:.2f} s = "
        f"{len(sequential) / elapsed:.0f} adjudications/s; "
        f"p50 {statistics.median(times) * 1000:.1f} ms, "
        f"p99 {sorted(times)[int(len(times) * 0.99) - 1] * 1000:.1f} ms"
    )
    concurrent = ids[claims:]
    t0 = time.perf_counter()
    await asyncio.gather(*(adjudicate_claim(repo, CTX, cid) for cid in concurrent))
    elapsed = time.perf_counter() - t0
    print(
        f"in process, all at once ({members} members): {len(concurrent)} claims in "
        f"{elapsed:.2f} s = {len(concurrent) / elapsed:.0f} adjudications/s"
    )
    await store.close()


def over_http(claims: int, members: int, clients: int) -> None:
    from bench._server import running_server

    work = Path(tempfile.mkdtemp(prefix="billable-adj-bench-"))
    with running_server(f"sqlite:///{work / 'b.db'}", ("--adjudication", "manual")) as (base, _):
        headers = {"Content-Type": "application/fhir+json"}
        with httpx.Client(base_url=f"{base}/fhir", headers=headers, timeout=60) as http:
            for m in range(members):
                http.put(f"/Coverage/cov-{m}", json=coverage(m)).raise_for_status()
            http.post("/Claim/$submit", json=claim(0, 0)).raise_for_status()  # warm up

        async def run() -> list[float]:
            latencies: list[float] = []
            queue = list(range(1, claims + 1))
            async with httpx.AsyncClient(base_url=f"{base}/fhir", headers=headers, timeout=60) as c:

                async def worker() -> None:
                    while queue:
                        n = queue.pop()
                        t1 = time.perf_counter()
                        r = await c.post("/Claim/$submit", json=claim(n % members, n))
                        r.raise_for_status()
                        latencies.append(time.perf_counter() - t1)

                await asyncio.gather(*(worker() for _ in range(clients)))
            return latencies

        t0 = time.perf_counter()
        latencies = asyncio.run(run())
        elapsed = time.perf_counter() - t0
        latencies.sort()
        print(
            f"$submit over HTTP ({clients} clients): {len(latencies)} claims in {elapsed:.2f} s"
            f" = {len(latencies) / elapsed:.0f} submits/s; "
            f"p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, "
            f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=400)
    parser.add_argument("--members", type=int, default=40)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--store", default=None, help="store URL (default: a fresh SQLite file)")
    parser.add_argument("--no-http", action="store_true")
    args = parser.parse_args()
    get_service().preload()
    url = args.store or f"sqlite:///{Path(tempfile.mkdtemp()) / 'billable.db'}"
    print(f"# adjudication bench: {args.claims} claims of 3 lines, {args.members} members, {url}")
    asyncio.run(in_process(url, args.claims, args.members))
    if not args.no_http:
        over_http(args.claims, args.members, args.clients)


if __name__ == "__main__":
    main()
