"""What the repository's policy costs on searches (prints figures, never pass/fail).

    .venv/bin/python -m bench.repository_bench [--resources 20000] [--runs 50]
        [--store sqlite:///PATH | mongodb://...]

Loads a synthetic Synthea-like data set (``bench/search_bench.generate``) through the
repository, then times, through ``Repository.search``, the same searches for an
unrestricted ``system/*.rs`` token and for a ``patient/*.rs`` token of one patient: a
type search, a system search over every type (the per-type restriction of issue 13),
``_summary=count`` over every type, and a conditional match (``If-None-Exist``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench.search_bench import generate
from server.auth.policy import SmartPolicy
from server.auth.scopes import Grants
from server.repository import Repository, RequestContext
from server.repository.opened import opened
from server.search.conditional import parse_conditional_search
from server.search.parse import parse_search
from server.storage.port import SearchQuery

BASE = "http://bench/fhir"
LOADER = RequestContext(base_url=BASE, user="bench")


def _ctx(scope: str, **claims: str) -> RequestContext:
    grants = Grants.from_scope_string(scope, "bench", **claims)
    return RequestContext(base_url=BASE, client_id="bench", grants=grants)


def _query(types: tuple[str, ...], text: str, total: bool = False) -> SearchQuery:
    pairs = [tuple(p.split("=", 1)) for p in text.split("&") if p]
    parsed = parse_search(types, pairs, base_url=BASE)  # type: ignore[arg-type]
    count = 0 if parsed.summary == "count" else parsed.count
    return SearchQuery(types, parsed.where, parsed.sort, count=count, total=total)


async def _time(repo: Repository, ctx: RequestContext, query: SearchQuery, runs: int) -> str:
    times = []
    found = 0
    for _ in range(runs):
        started = time.perf_counter()
        page = await repo.search(ctx, query)
        times.append((time.perf_counter() - started) * 1000)
        found = page.total if page.total is not None else len(page.versions)
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return f"p50 {statistics.median(times):7.2f} ms  p99 {p99:7.2f} ms  ({found} found)"


async def run(store_url: str, n: int, runs: int) -> None:
    resources = generate(n)
    async with opened(store_url, SmartPolicy()) as repo:
        started = time.perf_counter()
        for i in range(0, len(resources), 500):
            writes = [
                repo.new_version(r["resourceType"], r["id"], r, expected=0)[0]
                for r in resources[i : i + 500]
            ]
            await repo.commit_planned(LOADER, writes)
        print(f"loaded {len(resources)} resources in {time.perf_counter() - started:.1f} s")
        patient = next(r["id"] for r in resources if r["resourceType"] == "Patient")
        admin = _ctx("system/*.rs")
        me = _ctx("patient/*.rs", patient=patient)
        cases = {
            "Condition?code=...": _query(("Condition",), "code=44054006"),
            "system search, every type": _query((), "_count=20"),
            "system _summary=count": _query((), "_summary=count", total=True),
            "If-None-Exist identifier": parse_conditional_search(
                "Patient", f"_id={patient}", "bench"
            ),
        }
        for name, query in cases.items():
            for who, ctx in (("system/*.rs", admin), ("patient/*.rs", me)):
                print(f"{name:28} {who:13} {await _time(repo, ctx, query, runs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--resources", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--store", default=None)
    args = parser.parse_args()
    if args.store:
        asyncio.run(run(args.store, args.resources, args.runs))
        return
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(f"sqlite:///{Path(tmp) / 'bench.db'}", args.resources, args.runs))


if __name__ == "__main__":
    main()
