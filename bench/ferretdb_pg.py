"""Billable on FerretDB 1.24 + PostgreSQL beside SQLite, in one run (issue 18).

``ferretdb_on_postgres()`` starts a private PostgreSQL cluster (Debian's ``postgresql``
package, ``/usr/lib/postgresql/<v>/bin``) and FerretDB v1.24 (the binary of ``make
ferretdb``) on it, loopback only, in a temporary directory; as root, PostgreSQL runs as
the ``postgres`` user. Everything started is stopped.

``figures()`` runs the same workload on both backends, one after the other, each on a
fresh ``billable serve`` (auth off, coding manual): the reference bundles, then the
smallest patient bundles until ``resources`` resources are in (transaction bundles of
PUTs through HTTP, two client threads), then reads by id and three target searches
(``Claim?patient=&status=``, ``Encounter?patient=&date=``, ``Condition?code=``), each
request timed on the wall and in server CPU. CPU comes from ``/proc`` (utime + stime):
Billable's process tree, and separately FerretDB and the PostgreSQL cluster (postmaster,
its backends, and the time of backends that exited). Wall figures move with the
machine's load; CPU figures much less. ``max_ingest_s`` bounds a leg that cannot keep
up (the bench reports what it loaded instead of hanging).

Usage:
    python -m bench.ferretdb_pg [--population DIR] [--resources 10000] [--reads 300]
                                [--runs 30] [--backends sqlite,ferretdb-pg]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import orjson

from bench._server import running_server
from tests.support.ferretdb import answers, ferretdb_binary, free_port


def _pg_bin() -> Path:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise RuntimeError("no PostgreSQL binaries: apt-get install postgresql")


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@dataclass(frozen=True)
class Stack:
    """A running FerretDB on PostgreSQL: its URL, and the processes whose CPU counts."""

    url: str
    ferretdb_pid: int
    postmaster_pid: int
    pg_port: int
    directory: Path


@contextmanager
def ferretdb_on_postgres(database: str = "billable") -> Iterator[str]:
    """Yield a ``mongodb://`` URL of a private FerretDB on a private PostgreSQL cluster."""
    with ferretdb_stack(database) as stack:
        yield stack.url


@contextmanager
def ferretdb_stack(database: str = "billable", pg_settings: str = "") -> Iterator[Stack]:
    """Start PostgreSQL and FerretDB on loopback in a temporary directory; stop both.
    ``pg_settings``: more ``-c name=value`` options for PostgreSQL."""
    pg = _pg_bin()
    tmp = Path(tempfile.mkdtemp(prefix="billable-pg-"))
    data, sock = tmp / "data", tmp / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres")
        shutil.chown(sock, "postgres")
    pg_port, ferret_port = free_port(), free_port()
    ferret: subprocess.Popen[bytes] | None = None
    started = False
    try:
        subprocess.run(
            _as_postgres([str(pg / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            _as_postgres(
                [str(pg / "pg_ctl"), "-D", str(data), "-l", str(tmp / "pg.log"), "-w", "-o",
                 f"-p {pg_port} -k {sock} -h 127.0.0.1 -c fsync=on -c shared_buffers=128MB "
                 + pg_settings,
                 "start"]
            ),
            check=True,
            capture_output=True,
        )  # fmt: skip
        started = True
        subprocess.run(
            _as_postgres([str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(pg_port),
                          "-U", "postgres", "ferretdb"]),
            check=True,
            capture_output=True,
        )  # fmt: skip
        log = open(tmp / "ferretdb.log", "wb")  # noqa: SIM115 - closed with the process
        ferret = subprocess.Popen(
            [str(ferretdb_binary()), "--handler=postgresql",
             f"--postgresql-url=postgres://postgres@127.0.0.1:{pg_port}/ferretdb",
             f"--listen-addr=127.0.0.1:{ferret_port}", "--debug-addr=-", "--telemetry=disable",
             f"--state-dir={tmp}", "--log-level=warn"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        uri = f"mongodb://127.0.0.1:{ferret_port}/{database}"
        deadline = time.monotonic() + 30
        while not answers(uri):
            if time.monotonic() > deadline or ferret.poll() is not None:
                raise RuntimeError(f"FerretDB did not start: {(tmp / 'ferretdb.log').read_text()}")
            time.sleep(0.2)
        postmaster = int((data / "postmaster.pid").read_text().split()[0])
        yield Stack(uri, ferret.pid, postmaster, pg_port, tmp)
    finally:
        if ferret is not None:
            ferret.terminate()
            try:
                ferret.wait(timeout=10)
            except subprocess.TimeoutExpired:
                ferret.kill()
        if started:
            subprocess.run(
                _as_postgres([str(pg / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                capture_output=True,
            )
        shutil.rmtree(tmp, ignore_errors=True)


# -- CPU from /proc -----------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    found += [int(child), *_children(int(child))]
    return found


def tree_cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` and its live descendants, plus what reaped children used
    (cutime + cstime: PostgreSQL backends that exited)."""
    total = 0.0
    for index, p in enumerate([pid, *_children(pid)]):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            ticks = int(fields[11]) + int(fields[12])
            if index == 0:
                ticks += int(fields[13]) + int(fields[14])
            total += ticks / CLOCK_TICKS
    return total


class Meters:
    """CPU seconds of Billable's server and of the database processes behind it."""

    def __init__(self, server_pid: int, stack: Stack | None) -> None:
        self.pids = {"server": server_pid}
        if stack is not None:
            self.pids |= {"ferretdb": stack.ferretdb_pid, "postgresql": stack.postmaster_pid}

    def read(self) -> dict[str, float]:
        return {name: tree_cpu_s(pid) for name, pid in self.pids.items()}

    def since(self, before: dict[str, float]) -> dict[str, float]:
        now = self.read()
        return {name: now[name] - before[name] for name in now}


# -- the workload -------------------------------------------------------------------------

HEADERS = {
    "Content-Type": "application/fhir+json",
    "Accept": "application/fhir+json",
    "Prefer": "return=minimal",
}
REFERENCE_DATA = ("hospitalInformation", "practitionerInformation")
DEFAULT_POPULATION = Path("/work/pop/synthea-100/fed")
CODED_PATIENTS = 2  # patients coded for the Claim search
# FerretDB on PostgreSQL as it comes, and with lz4 TOAST compression (PostgreSQL >= 14):
# every find de-TOASTs every row, and lz4 decompresses several times faster than pglz.
PG_VARIANTS = {
    "ferretdb-pg": "",
    "ferretdb-pg-lz4": "-c default_toast_compression=lz4",
}


@dataclass
class Workload:
    """The bundles to post (reference data first) and what the reads and searches use."""

    reference: list[bytes]
    patients: list[bytes]
    resources: int
    refs: list[str]  # "Type/id" of every resource put
    patient_ids: list[str]
    condition_code: str  # "system|code", the commonest Condition code


def workload(population: Path, resources: int) -> Workload:
    files = sorted(population.glob("*.json"))
    reference = [p for p in files if p.name.startswith(REFERENCE_DATA)]
    others = sorted((p for p in files if p not in reference), key=lambda p: p.stat().st_size)
    chosen: list[bytes] = []
    refs: list[str] = []
    patient_ids: list[str] = []
    codes: Counter[str] = Counter()
    total = 0
    for path in others:
        if total >= resources:
            break
        body = path.read_bytes()
        bundle = orjson.loads(body)
        for entry in bundle.get("entry") or []:
            url = entry["request"]["url"]
            refs.append(url)
            resource = entry.get("resource") or {}
            if url.startswith("Patient/"):
                patient_ids.append(url.split("/", 1)[1])
            if url.startswith("Condition/"):
                for coding in (resource.get("code") or {}).get("coding") or []:
                    codes[f"{coding.get('system')}|{coding.get('code')}"] += 1
        total += len(bundle.get("entry") or [])
        chosen.append(body)
    reference_bodies = [p.read_bytes() for p in reference]
    return Workload(
        reference_bodies,
        chosen,
        total,
        refs,
        patient_ids,
        codes.most_common(1)[0][0] if codes else "http://snomed.info/sct|44054006",
    )


def _post_all(base: str, bodies: list[bytes], clients: int, budget_s: float) -> tuple[int, bool]:
    """POST bundles from ``clients`` threads until done or ``budget_s``: (posted, finished)."""
    host, port = base.removeprefix("http://").split(":")
    queue = list(reversed(bodies))
    lock = threading.Lock()
    deadline = time.monotonic() + budget_s
    posted = [0]
    errors: list[str] = []

    def worker() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=3600)
        while True:
            with lock:
                if not queue or errors or time.monotonic() > deadline:
                    break
                body = queue.pop()
            try:
                conn.request("POST", "/fhir", body=body, headers=HEADERS)
                response = conn.getresponse()
                answer = response.read()
            except OSError as exc:  # the server went away: report it, stop the others
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                break
            with lock:
                if response.status != 200:
                    errors.append(f"{response.status} {answer[:400]!r}")
                else:
                    posted[0] += 1
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"a bundle was refused: {errors[0]}")
    return posted[0], not queue


def _timed_gets(base: str, paths: list[str], meters: Meters) -> dict[str, float]:
    """GET each path in turn on one kept-alive connection: wall p50/p99 and mean CPU."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=600)
    wall: list[float] = []
    hits: list[int] = []
    before = meters.read()
    for path in paths:
        started = time.perf_counter()
        conn.request("GET", path, headers={"Accept": "application/fhir+json"})
        response = conn.getresponse()
        body = response.read()
        wall.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:300]!r}")
        answer = orjson.loads(body)
        if answer.get("resourceType") == "Bundle":
            matches = [e for e in answer.get("entry") or [] if e["search"]["mode"] == "match"]
            hits.append(len(matches))
    cpu = meters.since(before)
    conn.close()
    ordered = sorted(wall)
    out = {
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "requests": float(len(paths)),
    }
    for name, seconds in cpu.items():
        out[f"{name}_cpu_ms"] = 1000 * seconds / len(paths)
    if hits:
        out["hits"] = statistics.mean(hits)
    return out


def _searches(
    patients: list[str], coded: list[str], code: str, runs: int, rng: random.Random
) -> Iterator[tuple[str, list[str]]]:
    """The three target searches, ``runs`` times each (patients drawn at random; Claims
    only exist for the ``coded`` ones)."""
    picks = [rng.choice(patients) for _ in range(runs)]
    claimed = [rng.choice(coded or patients) for _ in range(runs)]
    yield (
        "Claim?patient=&status=active",
        [f"/fhir/Claim?patient={p}&status=active" for p in claimed],
    )
    yield (
        "Encounter?patient=&date=ge2015",
        [f"/fhir/Encounter?patient={p}&date=ge2015-01-01" for p in picks],
    )
    yield "Condition?code= (commonest)", [f"/fhir/Condition?code={quote(code)}"] * runs


def measure(
    store_url: str, stack: Stack | None, w: Workload, reads: int, runs: int, budget_s: float
) -> dict[str, object]:
    """Ingest, reads and searches on one backend (a fresh server on ``store_url``)."""
    biggest = max(len(b) for b in [*w.reference, *w.patients])
    env = {"BILLABLE_MAX_BODY_MB": str(max(128, biggest // 2**20 + 8))}
    mode = ("--log-level", "warning", "--coding", "manual", "--adjudication", "manual")
    with running_server(store_url, mode, env) as (base, pid):
        meters = Meters(pid, stack)
        _post_all(base, w.reference, 1, budget_s)
        before = meters.read()
        started = time.perf_counter()
        posted, finished = _post_all(base, w.patients, 2, budget_s)
        wall = time.perf_counter() - started
        cpu = meters.since(before)
        loaded = sum(
            len(orjson.loads(b).get("entry") or []) for b in w.patients[:posted]
        )  # bundles are taken in order
        out: dict[str, object] = {
            "bundles": posted,
            "resources": loaded,
            "finished": finished,
            "wall_s": round(wall, 1),
            "wall_resources_per_s": round(loaded / wall, 1),
        }
        for name, seconds in cpu.items():
            out[f"{name}_cpu_s"] = round(seconds, 2)
            out[f"{name}_cpu_ms_per_resource"] = round(1000 * seconds / max(loaded, 1), 3)
        out["resources_per_s_per_server_core"] = round(loaded / max(cpu["server"], 1e-9))
        all_cpu = sum(cpu.values())
        out["resources_per_s_per_core_all"] = round(loaded / max(all_cpu, 1e-9))
        done = set(_refs_of(w.patients[:posted]))
        loaded_patients = [p for p in w.patient_ids if f"Patient/{p}" in done]
        coded = loaded_patients[:CODED_PATIENTS]
        out.update(_code(store_url, coded, budget_s))  # Claims, for Claim?patient=&status=
        rng = random.Random(18)
        sample = [r for r in w.refs if r in done]
        paths = [f"/fhir/{r}" for r in rng.sample(sample, min(reads, len(sample)))]
        out["read by id"] = _timed_gets(base, paths, meters)
        for name, queries in _searches(loaded_patients, coded, w.condition_code, runs, rng):
            out[name] = _timed_gets(base, queries, meters)
        return out


def _code(store_url: str, patients: list[str], budget_s: float) -> dict[str, object]:
    """``billable code --patient`` for a few patients (the feed has no Claims; the server
    is idle meanwhile): Claims for their encounters in the filing window, adjudication
    left manual. A few only: on FerretDB every search the coder makes is a table scan."""
    started = time.perf_counter()
    for patient in patients:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "server.cli", "code", "--store", store_url,
                 "--patient", patient, "--adjudication", "manual", "--quiet"],
                capture_output=True,
                text=True,
                timeout=max(1.0, budget_s - (time.perf_counter() - started)),
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"coding": f"stopped after {budget_s:.0f} s"}
        if done.returncode != 0:
            return {"coding": f"failed: {done.stderr.strip().splitlines()[-1:]}"}
    return {
        "coded_patients": len(patients),
        "coding_wall_s": round(time.perf_counter() - started, 1),
    }


def _refs_of(bodies: list[bytes]) -> Iterator[str]:
    for body in bodies:
        for entry in orjson.loads(body).get("entry") or []:
            yield entry["request"]["url"]


def figures(
    population: Path | str = DEFAULT_POPULATION,
    resources: int = 10_000,
    reads: int = 300,
    runs: int = 30,
    backends: str = "sqlite,ferretdb-pg",
    max_ingest_s: float = 1200.0,
) -> dict[str, object]:
    """{backend: {ingest figures, "read by id": {...}, query: {p50_ms, p99_ms, ...}}}."""
    w = workload(Path(population), resources)
    out: dict[str, object] = {"resources_wanted": w.resources, "cpus": os.cpu_count()}
    for backend in [b.strip() for b in backends.split(",") if b.strip()]:
        print(f"ferretdb_pg: {backend} ...", file=sys.stderr, flush=True)
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                out[backend] = measure(
                    f"sqlite:///{tmp}/bench.db", None, w, reads, runs, max_ingest_s
                )
        elif backend in PG_VARIANTS:
            with ferretdb_stack(pg_settings=PG_VARIANTS[backend]) as stack:
                out[backend] = measure(stack.url, stack, w, reads, runs, max_ingest_s)
        else:
            raise ValueError(f"unknown backend {backend!r}: sqlite, {', '.join(PG_VARIANTS)}")
    out["load_average"] = round(os.getloadavg()[0], 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--population", type=Path, default=DEFAULT_POPULATION)
    parser.add_argument("--resources", type=int, default=10_000)
    parser.add_argument("--reads", type=int, default=300)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--backends", default="sqlite,ferretdb-pg")
    parser.add_argument("--max-ingest-s", type=float, default=1200.0)
    args = parser.parse_args()
    values = figures(
        args.population, args.resources, args.reads, args.runs, args.backends, args.max_ingest_s
    )
    print(orjson.dumps(values, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
