"""The attack table of issue 13 against a fresh server: attempts, refusals, leaks, 500s.

    .venv/bin/python -m bench.attack_table                 # SQLite
    .venv/bin/python -m bench.attack_table --store mongo   # FerretDB/MongoDB
        (BILLABLE_TEST_MONGO_URI, else a private FerretDB from BILLABLE_FERRETDB_BIN)
    .venv/bin/python -m bench.attack_table --verbose       # every failing case
    .venv/bin/python -m bench.attack_table --store mongo --subset   # the suite's Mongo leg

Runs every case of ``tests/security/table.py`` (the same table the test suite runs)
and prints figures; it never fails on them. A *refusal* is a 4xx answer; a *leak* is a
case whose answer carried one of patient B's markers; a case *fails* when its status
is not the expected one (cases that other branches fix are counted apart). Last, it
creates one resource just under the value cap and prints the worst latency of
``/healthz`` meanwhile: how long such a resource holds the event loop.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

from server.api.body import MAX_VALUES_PER_RESOURCE
from tests.security.live import Attack, attack_server
from tests.security.table import Result, all_cases, run_case


def _store_url(kind: str, workdir: Path) -> tuple[str, object | None]:
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'billable.db'}", None
    from tests.support.ferretdb import mongo_server, with_database

    context = mongo_server()
    uri = context.__enter__()
    return with_database(uri, f"attack_{uuid.uuid4().hex[:12]}"), context


def loop_stall(attack: Attack) -> tuple[float, float, int]:
    """(seconds the create took, worst /healthz latency meanwhile, status): how long one
    resource just under the value cap keeps the event loop from answering others."""
    values = MAX_VALUES_PER_RESOURCE - 100
    resource = {
        "resourceType": "Patient",
        "name": [{"family": f"F{i}"} for i in range(values // 2)],
    }
    outcome: dict[str, float | int] = {}

    def create() -> None:
        started = time.perf_counter()
        r = httpx.post(
            f"{attack.fhir}/Patient",
            json=resource,
            headers={"Authorization": f"Bearer {attack.tokens['payer']}"},
            timeout=120,
        )
        outcome["seconds"], outcome["status"] = time.perf_counter() - started, r.status_code

    worker = threading.Thread(target=create)
    worker.start()
    worst = 0.0
    with httpx.Client(timeout=120) as http:
        while worker.is_alive():
            started = time.perf_counter()
            http.get(f"{attack.base}/healthz")
            worst = max(worst, time.perf_counter() - started)
            time.sleep(0.02)
    worker.join()
    return float(outcome["seconds"]), worst, int(outcome["status"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=("sqlite", "mongo"), default="sqlite")
    parser.add_argument("--verbose", action="store_true", help="print every failing case")
    parser.add_argument(
        "--subset", action="store_true", help="only the cases the test suite runs on MongoDB"
    )
    args = parser.parse_args()
    cases = [c for c in all_cases() if c.mongo or not args.subset]
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        store_url, context = _store_url(args.store, Path(tmp))
        try:
            started = time.perf_counter()
            with attack_server(store_url, Path(tmp)) as attack:
                ready = time.perf_counter()
                for n, case in enumerate(cases, 1):
                    if n % 50 == 0:
                        print(f"  ... {n} of {len(cases)} cases", file=sys.stderr, flush=True)
                    try:
                        results.append(run_case(attack, case))
                    except Exception as exc:  # a custom case's own step went wrong
                        results.append(Result(case, 0, [], [f"step failed: {exc!r}"]))
                done = time.perf_counter()
                stall = loop_stall(attack)
        finally:
            if context is not None:
                context.__exit__(None, None, None)  # type: ignore[attr-defined]
    statuses = Counter(r.status for r in results)
    refusals = {s: n for s, n in sorted(statuses.items()) if 400 <= s < 500}
    leaks = [r for r in results if r.leaked]
    errors = [r for r in results if r.status >= 500]
    failing = [r for r in results if r.problems and not r.case.fixed_by]
    pending = [r for r in results if r.case.fixed_by]
    pending_open = [r for r in pending if r.problems]
    print(f"attack table on {args.store}: {len(results)} cases")
    print(f"  server start, tokens and seed: {ready - started:.1f} s; cases: {done - ready:.1f} s")
    print(f"  attempts:  {len(results)} (+{sum(1 for c in cases if c.control)} control requests)")
    print(f"  refusals:  {sum(refusals.values())}  by status {refusals}")
    print(f"  answered:  {sum(n for s, n in statuses.items() if s < 400)} (2xx/3xx)")
    pending_leaks = sum(1 for r in leaks if r.case.fixed_by)
    print(f"  leaks:     {len(leaks)} ({pending_leaks} in cases fixed on other branches)")
    print(f"  500s:      {len(errors)}")
    print(f"  failing:   {len(failing)} (not as expected, outside the pending fixes)")
    print(f"  pending:   {len(pending_open)} of {len(pending)} cases fixed on other branches")
    print(
        f"  one {MAX_VALUES_PER_RESOURCE - 100:,}-value Patient: created in {stall[0]:.2f} s"
        f" ({stall[2]}); worst /healthz latency meanwhile {stall[1] * 1000:.0f} ms"
    )
    by_category = Counter(r.case.category for r in results)
    print("  by category: " + ", ".join(f"{k} {v}" for k, v in sorted(by_category.items())))
    shown = failing + pending_open if args.verbose else failing
    for r in [*leaks, *errors, *shown]:
        print(f"\n- {r.case.name} ({r.case.fixed_by or 'here'}): " + "; ".join(r.problems)[:600])


if __name__ == "__main__":
    main()
