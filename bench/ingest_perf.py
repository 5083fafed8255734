"""Ingest cost per resource: transaction bundles through HTTP, and the stages inside.

Usage:
    python -m bench.ingest_perf [--folder DIR] [--patients N] [--clients 2]
        [--coding] [--stages-only] [--profile OUT.txt]

DIR is a fed Synthea population (``billable feed synthea``; default
``/work/pop/synthea-100/fed``, else the sample in ``tests/fixtures/synthea``). A fresh
``billable serve`` (SQLite, auth off, ``--coding manual`` unless ``--coding``) gets the
hospital and practitioner bundles first, then every patient bundle (the N smallest with
``--patients``), POSTed as prebuilt bodies by ``--clients`` threads that do nothing
else. Server CPU time (utime + stime of the server and its worker processes, from
``/proc``) is read before and after: ``CPU ms per resource`` and ``resources/s per
core`` (= resources / CPU seconds) do not depend on what else the machine runs, the
wall-clock rate does (the machine is shared: say so when quoting it).

With ``--coding`` the server codes and adjudicates automatically (``--coding auto
--adjudication auto``); the bench then waits until the server's CPU goes idle and
reports how long after the last bundle's answer the claim queue drained, and the
Claims/ClaimResponses made (counted through HTTP).

The stage figures are measured in this process on the population's own resources:
orjson parsing, ``validate_resource``, ``extract_index_values`` and the stored body's
serialisation, in µs per resource. The resources are taken as the server indexes them:
``urn:uuid:`` references rewritten to the entry's ``Type/id`` and conditional references
(``Practitioner?identifier=...``) to a ``Type/id`` as well (``stored_shape``); indexed
straight from the bundle, ``subject`` would never be a ``Patient`` reference. The
index-write stage is the SQLite index writer alone (``IndexWriter.add`` and ``flush``
of the sample's rows in one transaction, into a scratch database whose terms are
already known, as a running server's are).
``--profile`` samples the server with py-spy during the run and writes the top frames
(by own time and by total time) to a file.

``figures(**options)`` returns the headline numbers (``bench/run_all.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from bench._server import running_server, tree_cpu_seconds

POPULATION = Path("/work/pop/synthea-100/fed")
SAMPLE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "synthea"
REFERENCE_DATA = ("hospitalInformation", "practitionerInformation")
HEADERS = {
    "Content-Type": "application/fhir+json",
    "Accept": "application/fhir+json",
    "Prefer": "return=minimal",
}


# -- /proc ------------------------------------------------------------------------------


def memory_mib(pid: int, field: str) -> float:
    """A field of /proc/PID/status (VmRSS, VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- the population ---------------------------------------------------------------------


def population(folder: Path, patients: int | None) -> tuple[list[bytes], list[bytes]]:
    """(reference bundles, patient bundles): bodies as stored on disk."""
    files = sorted(folder.glob("*.json"))
    reference = [p.read_bytes() for p in files if p.name.startswith(REFERENCE_DATA)]
    others = sorted((p for p in files if not p.name.startswith(REFERENCE_DATA)), key=_size)
    if patients is not None:
        others = others[:patients]
    return reference, [p.read_bytes() for p in others]


def _size(path: Path) -> int:
    return path.stat().st_size


def entry_count(body: bytes) -> int:
    return len(orjson.loads(body).get("entry") or [])


def default_folder() -> Path:
    return POPULATION if POPULATION.is_dir() else SAMPLE


# -- the client -------------------------------------------------------------------------


def post_bodies(base: str, bodies: list[bytes], clients: int) -> list[float]:
    """POST every body to ``base``/fhir from ``clients`` threads; latencies in seconds.

    http.client on a kept-alive connection per thread: the client does nothing but send
    bytes it already holds, so it costs little next to the server."""
    host, port = base.removeprefix("http://").split(":")
    queue = list(enumerate(bodies))
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []

    def worker() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=900)
        while True:
            with lock:
                if not queue or errors:
                    break
                _, body = queue.pop()
            started = time.perf_counter()
            conn.request("POST", "/fhir", body=body, headers=HEADERS)
            response = conn.getresponse()
            answer = response.read()
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if response.status != 200:
                    errors.append(f"{response.status} {answer[:400]!r}")
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"a bundle was refused: {errors[0]}")
    return latencies


def count(base: str, rtype: str) -> int:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    conn.request("GET", f"/fhir/{rtype}?_summary=count", headers={"Accept": "application/json"})
    total = int(orjson.loads(conn.getresponse().read()).get("total", -1))
    conn.close()
    return total


def wait_idle(pid: int, quiet: float = 1.0, cpu_share: float = 0.05) -> float:
    """Block until the server used < ``cpu_share`` of a core for ``quiet`` seconds; the
    time (perf_counter) its last busy interval ended."""
    step = 0.1
    last_busy = time.perf_counter()
    before = tree_cpu_seconds(pid)
    while time.perf_counter() - last_busy < quiet:
        time.sleep(step)
        now = tree_cpu_seconds(pid)
        if now - before > cpu_share * step + 1e-9:
            last_busy = time.perf_counter()
        before = now
    return last_busy


# -- py-spy -----------------------------------------------------------------------------


def start_profile(pid: int, raw: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(os.sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy not found (pip install py-spy): no profile")
        return None
    return subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--output",
            str(raw),
            "--rate",
            "200",
            "--subprocesses",
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_profile(spy: subprocess.Popen[bytes] | None, raw: Path, out: Path, top: int = 30) -> None:
    if spy is None:
        return
    spy.send_signal(2)  # SIGINT: py-spy writes its file and stops
    with contextlib.suppress(subprocess.TimeoutExpired):
        spy.wait(timeout=60)
    if not raw.exists():
        print("py-spy wrote no profile")
        return
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        weight = int(n)
        samples += weight
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f.replace(str(Path.cwd()) + "/", "") for f in frames]
        if not frames:
            continue
        own[frames[-1]] += weight
        for frame in set(frames):
            total[frame] += weight
    lines = [f"py-spy: {samples} samples", "", "top frames by own time:"]
    lines += [f"  {100 * n / samples:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines += ["", "top frames by total time (the frame and what it calls):"]
    lines += [f"  {100 * n / samples:5.1f}%  {f}" for f, n in total.most_common(top)]
    out.write_text("\n".join(lines) + "\n")
    print(f"profile: {out}")


# -- the HTTP run -----------------------------------------------------------------------


def http_run(
    folder: Path,
    patients: int | None,
    clients: int,
    coding: bool,
    profile: Path | None,
    store_dir: Path,
) -> dict[str, object]:
    reference, bodies = population(folder, patients)
    resources = sum(entry_count(b) for b in bodies)
    mode = (
        ("--coding", "auto", "--adjudication", "auto")
        if coding
        else ("--coding", "manual", "--adjudication", "manual")
    )
    store = f"sqlite:///{store_dir / 'ingest.db'}"
    biggest = max(len(b) for b in [*reference, *bodies])
    env = {"BILLABLE_MAX_BODY_MB": str(max(128, biggest // 2**20 + 8))}
    with running_server(store, ("--log-level", "warning", *mode), env) as (base, pid):
        post_bodies(base, reference, 1)
        if coding:
            wait_idle(pid)
        idle_rss = memory_mib(pid, "VmRSS")
        spy = start_profile(pid, store_dir / "spy.raw") if profile else None
        cpu_before = tree_cpu_seconds(pid)
        started = time.perf_counter()
        latencies = post_bodies(base, bodies, clients)
        ended = time.perf_counter()
        cpu_ingest = tree_cpu_seconds(pid) - cpu_before
        drained = None
        if coding:
            last_busy = wait_idle(pid)
            drained = max(0.0, last_busy - ended)
        cpu_total = tree_cpu_seconds(pid) - cpu_before
        if spy is not None and profile is not None:
            stop_profile(spy, store_dir / "spy.raw", profile)
        out: dict[str, object] = {
            "bundles": len(bodies),
            "resources": resources,
            "megabytes": round(sum(len(b) for b in bodies) / 2**20, 1),
            "clients": clients,
            "wall_seconds": round(ended - started, 2),
            "wall_resources_per_s": round(resources / (ended - started)),
            "server_cpu_seconds": round(cpu_total, 2),
            "cpu_ms_per_resource": round(1000 * cpu_total / resources, 3),
            "resources_per_s_per_core": round(resources / cpu_total),
            "bundle_p50_s": round(sorted(latencies)[len(latencies) // 2], 3),
            "bundle_max_s": round(max(latencies), 3),
            "idle_rss_mib": round(idle_rss),
            "peak_rss_mib": round(memory_mib(pid, "VmHWM")),
        }
        if coding:
            out["ingest_cpu_seconds"] = round(cpu_ingest, 2)
            out["queue_drained_after_s"] = round(drained or 0.0, 2)
            out["claims"] = count(base, "Claim")
            out["claim_responses"] = count(base, "ClaimResponse")
            out["eobs"] = count(base, "ExplanationOfBenefit")
        return out


# -- the stages, in process -------------------------------------------------------------


_URN = re.compile(rb'"(urn:uuid:[0-9A-Fa-f-]+)"')
_CONDITIONAL = re.compile(rb'"reference":"([A-Z][A-Za-z]+)\?([^"]*)"')


def stored_shape(body: bytes) -> list[bytes]:
    """The entries' resources with their references as the transaction writes them: a
    ``urn:uuid:`` reference becomes the entry's ``Type/id``, a conditional reference a
    ``Type/id`` (a stand-in id: the bench has no store to resolve it against)."""
    entries = orjson.loads(body)["entry"]
    ids: dict[bytes, bytes] = {}
    for entry in entries:
        resource = entry["resource"]
        url = (entry.get("request") or {}).get("url") or ""
        target = url if "/" in url and "?" not in url else None
        if target is None and resource.get("id"):
            target = f"{resource['resourceType']}/{resource['id']}"
        if entry.get("fullUrl") and target:
            ids[entry["fullUrl"].encode()] = target.encode()

    def urn(m: re.Match[bytes]) -> bytes:
        return b'"' + ids.get(m.group(1), m.group(1)) + b'"'

    def conditional(m: re.Match[bytes]) -> bytes:
        stand_in = hashlib.sha1(m.group(2)).hexdigest()[:32].encode()
        return b'"reference":"' + m.group(1) + b"/" + stand_in + b'"'

    out = []
    for entry in entries:
        raw = orjson.dumps(entry["resource"])
        out.append(_CONDITIONAL.sub(conditional, _URN.sub(urn, raw)))
    return out


def stage_figures(folder: Path, sample: int = 6000) -> dict[str, object]:
    """CPU µs per resource of each ingest stage, over ``sample`` resources of the
    population (every type in its population share; the best of 3 rounds, after one
    warm-up round that compiles the validators and extraction plans)."""
    from server.repository.versions import serialise_with_meta
    from server.search.extract import extract_index_values
    from server.storage.sqlite_index import IndexWriter
    from server.storage.sqlite_schema import INDEX_TABLES
    from server.validation import validate_resource

    _, bodies = population(folder, None)
    raws: list[bytes] = []
    for body in bodies:
        raws.extend(stored_shape(body))
    step = max(1, len(raws) // sample)
    raws = raws[::step][:sample]
    resources = [orjson.loads(r) for r in raws]

    def best(fn: Any) -> float:  # CPU time of this process: steadier on a shared machine
        times = []
        for _ in range(3):
            started = time.process_time()
            fn()
            times.append(time.process_time() - started)
        return 1e6 * min(times) / len(raws)

    def parse() -> None:
        for r in raws:
            orjson.loads(r)

    def validate() -> None:
        for r in resources:
            validate_resource(r)

    def extract() -> None:
        for r in resources:
            extract_index_values(r, "2026-01-01T00:00:00.000Z")

    def serialise() -> None:
        for r in resources:
            serialise_with_meta(r, "x", 1, "2026-01-01T00:00:00.000Z")

    indexes = [
        (r["resourceType"], extract_index_values(r, "2026-01-01T00:00:00.000Z")) for r in resources
    ]
    scratch = tempfile.TemporaryDirectory()
    db = sqlite3.connect(Path(scratch.name) / "index.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(INDEX_TABLES)
    writer = IndexWriter()
    rounds = iter(range(1, 100))

    def index_write() -> None:  # one transaction, as a bundle's commit (warm term cache)
        base = 10_000_000 * next(rounds)
        db.execute("BEGIN")
        for seq, (rtype, index) in enumerate(indexes):
            writer.add(db, rtype, base + seq, index)
        writer.flush(db)
        db.execute("COMMIT")
        writer.committed()

    for r in resources:  # warm-up: per-type validators and extraction plans
        validate_resource(r)
        extract_index_values(r, "2026-01-01T00:00:00.000Z")
    index_write()  # warm-up: the terms tables and the writer's term cache
    try:
        return {
            "stage_resources": len(raws),
            "stage_parse_us": round(best(parse), 1),
            "stage_validate_us": round(best(validate), 1),
            "stage_extract_us": round(best(extract), 1),
            "stage_serialise_us": round(best(serialise), 1),
            "stage_index_write_us": round(best(index_write), 1),
        }
    finally:
        db.close()
        scratch.cleanup()


def figures(
    folder: str | Path | None = None,
    patients: int | None = None,
    clients: int = 2,
    coding: bool = False,
    stages: bool = True,
    http: bool = True,
    profile: str | Path | None = None,
) -> dict[str, object]:
    """The headline numbers: HTTP ingest (CPU per resource, rates) and the stage costs."""
    where = Path(folder) if folder else default_folder()
    out: dict[str, object] = {"population": str(where), "cpus": os.cpu_count()}
    if stages:
        out.update(stage_figures(where))
    if http:
        with tempfile.TemporaryDirectory() as tmp:
            out.update(
                http_run(
                    where, patients, clients, coding, Path(profile) if profile else None, Path(tmp)
                )
            )
    out["load_average"] = round(os.getloadavg()[0], 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--patients", type=int, default=None)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--coding", action="store_true")
    parser.add_argument("--stages-only", action="store_true")
    parser.add_argument("--no-stages", action="store_true")
    parser.add_argument("--profile", type=Path, default=None)
    args = parser.parse_args()
    result = figures(
        args.folder,
        args.patients,
        args.clients,
        args.coding,
        stages=not args.no_stages,
        http=not args.stages_only,
        profile=args.profile,
    )
    width = max(len(k) for k in result)
    print("ingest_perf (wall figures on a shared, loaded machine; CPU figures from /proc)")
    for key, value in result.items():
        print(f"  {key:<{width}}  {value}")


if __name__ == "__main__":
    main()
