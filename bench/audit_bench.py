"""Audit chain figures: what keying costs per event, append rate, and verify rate.

Prints, for one AuditEvent of the size the middleware writes:

- microseconds per hash: plain SHA-256 (the release before keying) vs HMAC-SHA256;
- microseconds per anchor-file update (one per commit);
- sequential appends per second through ``AuditTrail`` on an SQLite store in a
  temporary directory (one commit, so one anchor update, per event), and with every
  append started at once (group commit);
- events verified per second by ``AuditTrail.check``.

Usage: ``.venv/bin/python -m bench.audit_bench [--events N]``
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import timeit
from pathlib import Path

from server.audit.chain import (
    GENESIS,
    AuditRecord,
    AuditTrail,
    build_event,
    canonical,
    chain_hash,
)
from server.audit.seal import AuditSeal
from server.repository import Repository
from server.storage.factory import create_store

RECORD = AuditRecord(
    "R", "read", 200, "payer", "Practitioner/pr1", "127.0.0.1", "Claim/c1", None, "GET -> 200"
)


def per_call_us(work: object, number: int = 20000) -> float:
    return timeit.timeit(work, number=number) / number * 1e6  # type: ignore[arg-type]


async def store_figures(directory: Path, events: int) -> tuple[float, float, float]:
    store = create_store(f"sqlite:///{directory / 'bench.db'}")
    await store.open()
    try:
        trail = AuditTrail(Repository(store), AuditSeal.open(directory / "audit.key"))
        started = time.perf_counter()
        for _ in range(events):
            await trail.append(RECORD)
        sequential = events / (time.perf_counter() - started)
        started = time.perf_counter()
        await asyncio.gather(*(trail.append(RECORD) for _ in range(events)))
        concurrent = events / (time.perf_counter() - started)
        started = time.perf_counter()
        report = await trail.check()
        assert not report.problems, report.problems
        verified = report.events / (time.perf_counter() - started)
        return sequential, concurrent, verified
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        seal = AuditSeal.open(directory / "hash.key")
        event = build_event(RECORD, "2026-12-01T00:00:00.000000Z")
        body = canonical(event)
        sha = per_call_us(lambda: chain_hash(GENESIS, event))
        mac = per_call_us(lambda: seal.mac(GENESIS, canonical(event)))
        counter = iter(range(1, 10**9))
        anchor = per_call_us(lambda: seal.write_anchor(next(counter), "ab" * 32, 0), 2000)
        sequential, concurrent, verified = asyncio.run(store_figures(directory, args.events))
    print(f"event size (canonical JSON):                 {len(body):8d} bytes")
    print(f"plain SHA-256 chain hash (old):              {sha:8.1f} us/event")
    print(f"HMAC-SHA256 chain hash (keyed):              {mac:8.1f} us/event")
    print(f"anchor file update:                          {anchor:8.1f} us/commit")
    print(f"sequential appends (one commit each):        {sequential:8.0f} events/s")
    print(f"all appends at once (group commit):          {concurrent:8.0f} events/s")
    print(f"verify:                                      {verified:8.0f} events/s")


if __name__ == "__main__":
    main()
