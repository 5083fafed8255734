"""Ingest throughput of Synthea patient bundles, through HTTP, against a real server.

Usage:
    bench/synthea.sh 12 7 /tmp/synthea-bench          # once: generate patients
    python -m bench.ingest_bench [DIR] [--backends sqlite,mongo] [--clients 2]
        [--max-entries 6000] [--largest]

DIR holds Synthea's FHIR output (``DIR/fhir/*.json`` or ``DIR/*.json``; default the
sample in tests/fixtures/synthea). For each backend (SQLite file; MongoDB through a
private FerretDB, or BILLABLE_TEST_MONGO_URI) and with and without write-time search
index extraction, a fresh ``billable serve`` process gets the hospital and practitioner
bundles (not timed), then every patient bundle of at most --max-entries entries, posted
as transactions by --clients concurrent clients. Prints resources/s, per-bundle latency
and the server's RSS. With --largest, a fresh server then gets the largest patient bundle
alone (any size; the body limit is raised to fit) and its peak RSS (VmHWM) is printed.

"Without index extraction" replaces the full search index (``extract_index_values``) by
the identifier tokens alone, which Synthea's conditional references need. Figures only:
nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench._server import descendants, running_server, tree_cpu_seconds

HEADERS = {
    "Content-Type": "application/fhir+json",
    "Accept": "application/fhir+json",
    "Prefer": "return=minimal",
}
REFERENCE_DATA = ("hospitalInformation", "practitionerInformation")
SAMPLE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "synthea"
# "Without index extraction": only the identifier tokens are indexed (what conditional
# references and creates need), not the other search parameters.
NO_INDEX_WRAPPER = (
    "import sys, server.repository as r;"
    " from server.storage.port import SearchIndex;"
    " from server.search.extract import extract_tokens;"
    " r.extract_index_values = lambda res, *a, **k: SearchIndex("
    "tokens=[('identifier', t.system, t.code) for t in extract_tokens(res)]);"
    " from server.cli import main; sys.exit(main(sys.argv[1:]))"
)


def proc_status(pid: int, field: str) -> float:
    """A memory field of /proc/PID/status (VmRSS, VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def tree_memory(pid: int, field: str) -> float:
    """``field`` summed over the server and its worker processes, in MiB."""
    total = 0.0
    for p in descendants(pid):
        with contextlib.suppress(OSError, ValueError):
            total += proc_status(p, field)
    return total


def server(store_url: str, index: bool, max_body_mb: int) -> Any:
    """A real server process; without ``index`` it stores no search index values."""
    launcher = ("-m", "server.cli") if index else ("-c", NO_INDEX_WRAPPER)
    return running_server(
        store_url,
        ("--log-level", "warning"),
        {"BILLABLE_MAX_BODY_MB": str(max_body_mb)},
        launcher,
    )


def bundle_files(folder: Path) -> tuple[list[Path], list[tuple[Path, int]]]:
    """(reference data files, [(patient file, entries)])."""
    fhir = folder / "fhir" if (folder / "fhir").is_dir() else folder
    files = sorted(fhir.glob("*.json"))
    reference = [p for p in files if p.name.startswith(REFERENCE_DATA)]
    patients = []
    for path in files:
        if path not in reference:
            patients.append((path, len(orjson.loads(path.read_bytes())["entry"])))
    return reference, patients


async def post_all(base: str, bodies: list[bytes], clients: int) -> list[float]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            started = time.perf_counter()
            r = await client.post(f"{base}/fhir", content=body, headers=HEADERS)
            latencies.append(time.perf_counter() - started)
            if r.status_code != 200:
                raise RuntimeError(f"bundle refused: {r.status_code} {r.text[:500]}")

    async with httpx.AsyncClient(timeout=600) as client:
        await asyncio.gather(*(worker(client) for _ in range(clients)))
    return latencies


def load_reference_data(base: str, reference: list[Path]) -> None:
    for path in reference:
        r = httpx.post(f"{base}/fhir", content=path.read_bytes(), headers=HEADERS, timeout=600)
        r.raise_for_status()


def throughput(
    store_url: str,
    index: bool,
    reference: list[Path],
    patients: list[tuple[Path, int]],
    clients: int,
) -> None:
    bodies = [p.read_bytes() for p, _ in patients]
    cores = os.cpu_count() or 1
    resources = sum(n for _, n in patients)
    megabytes = sum(len(b) for b in bodies) / 2**20
    with server(store_url, index, max_body_mb=64) as (base, pid):
        load_reference_data(base, reference)
        cpu_before = tree_cpu_seconds(pid)
        started = time.perf_counter()
        latencies = asyncio.run(post_all(base, bodies, clients))
        elapsed = time.perf_counter() - started
        cpu = tree_cpu_seconds(pid) - cpu_before
        rss = proc_status(pid, "VmRSS")
        hwm = proc_status(pid, "VmHWM")
        workers = tree_memory(pid, "VmRSS") - rss
    print(
        f"  index {'on ' if index else 'off'}: {len(bodies)} bundles, {resources} resources,"
        f" {megabytes:.1f} MiB in {elapsed:.1f}s = {resources / elapsed:,.0f} resources/s;"
        f" bundle p50 {statistics.median(latencies):.2f}s max {max(latencies):.2f}s;"
        f" server RSS {rss:.0f} MiB (peak {hwm:.0f} MiB), validation workers {workers:.0f} MiB;"
        f" server CPU {cpu * 1000 / resources:.2f} ms per resource"
        f" (= {resources / cpu * cores:,.0f} resources/s if it had the {cores} CPUs to itself)",
        flush=True,
    )


def largest(store_url: str, reference: list[Path], patients: list[tuple[Path, int]]) -> None:
    path, entries = max(patients, key=lambda p: p[1])
    body = path.read_bytes()
    limit = max(16, int(len(body) / 2**20) + 8)
    with server(store_url, True, max_body_mb=limit) as (base, pid):
        load_reference_data(base, reference)
        before = proc_status(pid, "VmHWM")
        started = time.perf_counter()
        asyncio.run(post_all(base, [body], 1))
        elapsed = time.perf_counter() - started
        peak = proc_status(pid, "VmHWM")
        workers = tree_memory(pid, "VmHWM") - peak
    print(
        f"  largest bundle: {entries} entries, {len(body) / 2**20:.1f} MiB in {elapsed:.1f}s"
        f" ({entries / elapsed:,.0f} resources/s); server peak RSS {peak:.0f} MiB"
        f" (before it: {before:.0f} MiB), validation workers' peaks {workers:.0f} MiB",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("folder", nargs="?", type=Path, default=SAMPLE)
    parser.add_argument("--backends", default="sqlite,mongo")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--max-entries", type=int, default=6000)
    parser.add_argument("--largest", action="store_true")
    parser.add_argument("--no-index-leg", action="store_true", help="skip index off")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
    reference, patients = bundle_files(args.folder)
    timed = [(p, n) for p, n in patients if n <= args.max_entries]
    print(
        f"ingest bench: {len(timed)} Synthea patient bundles from {args.folder}"
        f" (sizes {sorted(n for _, n in timed)}), {args.clients} clients,"
        f" {os.cpu_count()} CPUs",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            print(f"{backend}:", flush=True)
            with store_urls(backend, Path(tmp)) as make_url:
                for index in (True, False) if not args.no_index_leg else (True,):
                    throughput(make_url(), index, reference, timed, args.clients)
                if args.largest:
                    largest(make_url(), reference, patients)


@contextlib.contextmanager
def store_urls(backend: str, tmp: Path) -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty store URLs on ``backend``."""
    counter = iter(range(1_000_000))
    if backend == "sqlite":
        yield lambda: f"sqlite:///{tmp / f'ingest-{next(counter)}.db'}"
        return
    from tests.support.ferretdb import mongo_server, with_database

    with mongo_server() as uri:
        yield lambda: with_database(uri, f"ingest_{next(counter)}")


if __name__ == "__main__":
    main()
