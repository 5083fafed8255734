"""Terminology benchmark: start-up, memory, and $lookup/$translate latency.

    .venv/bin/python bench/terminology_bench.py [--n 20000] [--http-n 2000]

Prints figures, never pass/fail. Start-up and memory are measured in a fresh child
process (shipped tables only, every table loaded); in-process latencies call the service
plus the Parameters building and orjson serialisation the HTTP handler does; HTTP
latencies go through a real uvicorn on a free loopback port serving a FastAPI app with
only the terminology router, over one keep-alive httpx connection.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = """
import json, sys, time, tempfile
t0 = time.perf_counter()
from terminology.service import TerminologyService
t1 = time.perf_counter()
service = TerminologyService(data_dir=tempfile.mkdtemp())
service.preload()
t2 = time.perf_counter()
rss = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS:'))
hwm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "rss_mb": rss / 1024,
                  "peak_mb": hwm / 1024}))
"""


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def timed(fn: Callable[[], object], n: int) -> tuple[float, float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1000)
    return percentiles(samples)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--http-n", type=int, default=2000)
    args = parser.parse_args()

    child = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, cwd=ROOT, check=True
    )
    startup = json.loads(child.stdout)
    print(
        f"start-up (import + load every shipped table): "
        f"{startup['import_s'] + startup['load_s']:.2f} s "
        f"(import {startup['import_s']:.2f} s, load {startup['load_s']:.2f} s)"
    )
    print(
        f"resident memory after load: {startup['rss_mb']:.0f} MB (peak {startup['peak_mb']:.0f} MB)"
    )

    import orjson

    from terminology import systems
    from terminology.fhir_api import lookup_parameters
    from terminology.service import TerminologyService

    service = TerminologyService(data_dir=tempfile.mkdtemp())
    service.preload()
    day = date(2026, 3, 2)
    cs, _ = service.code_system(systems.ICD10CM, day)
    billable = [c for c, concept in cs.concepts.items() if concept.billable]
    rng = random.Random(6)
    codes = [rng.choice(billable) for _ in range(1000)]
    sources = [
        src
        for cm in service.concept_maps(day)
        if cm.meta.url == systems.MAP_SNOMED_ICD10CM
        for src in cm.entries
    ]
    i = 0

    def one_lookup() -> None:
        nonlocal i
        i += 1
        found = service.lookup(systems.ICD10CM, codes[i % len(codes)], day)
        orjson.dumps(lookup_parameters(found))

    def one_service_lookup() -> None:
        nonlocal i
        i += 1
        service.lookup(systems.ICD10CM, codes[i % len(codes)], day)

    def one_translate() -> None:
        nonlocal i
        i += 1
        service.translate(
            systems.SNOMED, sources[i % len(sources)], systems.ICD10CM, day, 40, "female"
        )

    for name, fn in (
        ("lookup (service only)", one_service_lookup),
        ("$lookup (service + Parameters + orjson)", one_lookup),
        ("translate (service)", one_translate),
    ):
        timed(fn, 2000)  # warm up
        p50, p99 = timed(fn, args.n)
        print(f"in-process {name}: p50 {p50:.1f} us, p99 {p99:.1f} us (n={args.n})")

    import httpx
    import uvicorn
    from fastapi import FastAPI

    from server.api.errors import install_error_handlers
    from terminology.fhir_api import router

    app = FastAPI()
    app.state.terminology = service
    app.include_router(router, prefix="/fhir")
    install_error_handlers(app)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}/fhir"
    try:
        with httpx.Client(base_url=base, timeout=10) as http:

            def http_lookup() -> None:
                nonlocal i
                i += 1
                r = http.get(
                    "/CodeSystem/$lookup",
                    params={
                        "system": systems.ICD10CM,
                        "code": codes[i % len(codes)],
                        "date": "2026-03-02",
                    },
                )
                assert r.status_code == 200

            def http_translate() -> None:
                nonlocal i
                i += 1
                r = http.get(
                    "/ConceptMap/$translate",
                    params={
                        "system": systems.SNOMED,
                        "code": sources[i % len(sources)],
                        "targetsystem": systems.ICD10CM,
                        "age": "40",
                        "sex": "female",
                        "date": "2026-03-02",
                    },
                )
                assert r.status_code == 200

            for name, fn in (("$lookup", http_lookup), ("$translate", http_translate)):
                timed(fn, 200)
                p50, p99 = timed(fn, args.http_n)
                print(
                    f"HTTP {name} (uvicorn, loopback, keep-alive): p50 {p50 / 1000:.2f} ms, "
                    f"p99 {p99 / 1000:.2f} ms (n={args.http_n})"
                )
    finally:
        server.should_exit = True
        thread.join(timeout=10)


if __name__ == "__main__":
    main()
