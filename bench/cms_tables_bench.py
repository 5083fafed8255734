"""CMS tables benchmark: start-up with every shipped table, idle memory, lookup latency.

    .venv/bin/python bench/cms_tables_bench.py [--n 20000]

Prints figures, never pass/fail. ``cpu_s`` is the CPU time of the whole start-up (import,
every table, first indexes): on a shared machine the wall time grows with the load
average, which is printed beside it. Start-up and memory are measured in a fresh child process
(the shipped tables only): import, then ``preload()`` of every table (ICD-10-CM FY2025-2027,
ICD-10-PCS, HCPCS, CPT from RVU26C, the RVU, GPCI, locality, MUE, AOC and PTP tables and the
maps), with the time per table kind. Lookups are p50/p99 of one call per code, codes drawn
at random from each table, after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = """
import json, os, sys, time, tempfile
c0 = time.process_time()
t0 = time.perf_counter()
from terminology.service import TerminologyService
t1 = time.perf_counter()
service = TerminologyService(data_dir=tempfile.mkdtemp())
kinds = {}
for entry in service.catalog():
    s = time.perf_counter()
    entry.load()
    kinds[entry.kind] = kinds.get(entry.kind, 0.0) + time.perf_counter() - s
t2 = time.perf_counter()
from datetime import date
d = date(2026, 8, 3)
service.fee("99213", d); service.mue("99213", d); service.addons("99292", d)
t3 = time.perf_counter()
cpu = time.process_time() - c0
status = {l.split(':')[0]: l.split()[1] for l in open('/proc/self/status') if l[:2] == 'Vm'}
print(json.dumps({"cpu_s": cpu, "wall_total_s": t3 - t0, "load_avg": os.getloadavg()[0],
                  "import_s": t1 - t0, "load_s": t2 - t1, "first_index_s": t3 - t2,
                  "kinds": kinds, "rss_mb": int(status['VmRSS']) / 1024,
                  "hwm_mb": int(status['VmHWM']) / 1024}))
"""


def child() -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def timed(call: Callable[[str], object], codes: list[str], n: int) -> tuple[float, float]:
    for code in codes[:200]:
        call(code)
    samples = []
    for i in range(n):
        code = codes[i % len(codes)]
        start = time.perf_counter_ns()
        call(code)
        samples.append(time.perf_counter_ns() - start)
    samples.sort()
    return statistics.median(samples) / 1000, samples[int(len(samples) * 0.99)] / 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = [child() for _ in range(args.runs)]
    names = ("cpu_s", "wall_total_s", "load_avg", "import_s", "load_s", "first_index_s")
    for name in (*names, "rss_mb", "hwm_mb"):
        values = sorted(float(r[name]) for r in runs)  # type: ignore[arg-type]
        print(f"start-up {name:14} min {values[0]:.3f}  median {values[len(values) // 2]:.3f}")
    kinds = runs[-1]["kinds"]
    assert isinstance(kinds, dict)
    print("load per kind (s):", ", ".join(f"{k} {v:.3f}" for k, v in sorted(kinds.items())))

    from terminology.service import TerminologyService

    t = TerminologyService(data_dir=tempfile.mkdtemp())
    t.preload()
    day = date(2026, 8, 3)
    rng = random.Random(14)
    rvus = [r.code for r in next(iter(t.catalog("mpfs-rvu"))).load()]
    mues = [m.code for m in next(iter(t.catalog("mue"))).load()]
    icd = [
        c for c, x in t.code_system("icd10cm", date(2026, 10, 5))[0].concepts.items() if x.billable
    ]
    hcpcs = list(t.code_system("hcpcs", day)[0].concepts)
    cpt = list(t.code_system("cpt", day)[0].concepts)
    for sample in (rvus, mues, icd, hcpcs, cpt):
        rng.shuffle(sample)
    checks: list[tuple[str, Callable[[str], object], list[str]]] = [
        ("rvu (indicators)", lambda c: t.rvu(c, day), rvus),
        ("fee (RVU x GPCI x CF)", lambda c: t.fee(c, day, "13202-01"), rvus),
        ("mue", lambda c: t.mue(c, day), mues),
        ("addons (AOC)", lambda c: t.addons(c, day), rvus),
        ("validate CPT", lambda c: t.validate_code("cpt", c, day), cpt),
        ("validate HCPCS", lambda c: t.validate_code("hcpcs", c, day), hcpcs),
        (
            "validate ICD-10-CM FY2027",
            lambda c: t.validate_code("icd10cm", c, date(2026, 10, 5)),
            icd,
        ),
    ]
    for name, call, codes in checks:
        p50, p99 = timed(call, codes, args.n)
        print(f"lookup {name:28} p50 {p50:6.2f} us  p99 {p99:6.2f} us  ({len(codes)} codes)")


if __name__ == "__main__":
    main()
