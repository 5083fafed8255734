"""How the common payer and EHR searches grow from 10k to 100k to 1M resources (figures only).

    .venv/bin/python -m bench.search_scale [--sizes 10k,100k,1m] [--runs 300] [--explain]
        [--no-http] [--root /work/pop/storage/scale] [--population /work/pop/synthea-100/fed]

Stores (kept under ``--root``, built once and reused):

* ``s100``: the 100-patient Synthea population (``billable load``), coded with
  ``billable code`` (no filing window) so that it holds Billable's own Claims,
  ClaimResponses and EOBs;
* ``s10``: the population's first patient files (and its organisations and
  practitioners), about 10k resources, loaded and coded the same way;
* ``s1m``: ``s100`` replicated 7 times (1.0M resources, 700 patients). A 1,000-patient
  Synthea run takes hours on this machine, so replicas 1-6 are copies of every resource
  of ``s100`` with every UUID (resource ids, references, identifier values) rewritten
  per replica; written through the repository (index extraction included, validation
  skipped: the copies are of validated resources). Each patient's compartment
  therefore has the size of a real one, and the store the size of a 1M population.

Each query runs twice over, on random patients of replica 0:

* in process through the repository (parse -> expression tree -> SQL -> page ->
  ``_include``): wall p50/p99 and this process's CPU per query (mean/p99), with the
  patient of each run, so that the slowest runs name their patient and its size;
* through HTTP against a real ``billable serve`` (auth off) on a scratch copy of the
  store (every request writes its AuditEvent; the stores under ``--root`` are never
  served): client wall p50/p99 and the server's CPU per request p50/p99, summed over
  its threads from ``/proc/<pid>/task/*/schedstat`` (nanoseconds; ``/proc/<pid>/stat``
  counts 10 ms ticks). The HTTP figures include parsing, the Bundle and its bytes.

p99 of ``--runs`` draws (300: the 3rd slowest). Wall figures move with the machine's
load; CPU figures much less. ``worst`` names the query with the highest CPU p99 per
size and why: the patients of its slowest runs and how many resources of the queried
type each has. ``--explain`` prints SQLite's plan of each query on the largest store.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson

from server.repository import Repository, RequestContext
from server.search.parse import Include, parse_search
from server.storage.port import SearchQuery, StoredVersion

DEFAULT_ROOT = Path(os.environ.get("BILLABLE_SCALE_ROOT", "/work/pop/storage/scale"))
DEFAULT_POPULATION = Path(os.environ.get("BILLABLE_POPULATION", "/work/pop/synthea-100/fed"))
SIZES = {"10k": "s10", "100k": "s100", "1m": "s1m"}
REPLICAS = 7  # copies of s100 (143.6k resources each): the first count past 1M
SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
CTX = RequestContext(base_url="http://bench/fhir", user="bench")
UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _cli(*args: str) -> None:
    # Every encounter is coded (no timely filing window): the payer queries need claims.
    env = {**os.environ, "BILLABLE_TIMELY_FILING_DAYS": "0"}
    subprocess.run([sys.executable, "-m", "server.cli", *args], check=True, env=env)


def _url(db: Path) -> str:
    return f"sqlite:///{db}"


def build_small(population: Path, db: Path, target: int = 10_000) -> None:
    """The first patient files (plus the shared ones) until about ``target`` entries."""
    files = sorted(population.glob("*.json"))
    shared = [f for f in files if f.name.startswith(("hospital", "practitioner"))]
    chosen = list(shared)
    entries = sum(f.read_bytes().count(b'"request"') for f in shared)
    for f in files:
        if f in shared:
            continue
        if entries >= target:
            break
        chosen.append(f)
        entries += f.read_bytes().count(b'"request"')
    subset = db.parent / "s10-files"
    subset.mkdir(exist_ok=True)
    for f in chosen:
        link = subset / f.name
        if not link.exists():
            link.symlink_to(f)
    _cli("load", str(subset), "--quiet", "--store", _url(db))
    _cli("code", "--quiet", "--store", _url(db))


def build_base(population: Path, db: Path) -> None:
    _cli("load", str(population), "--quiet", "--store", _url(db))
    _cli("code", "--quiet", "--store", _url(db))


def _rewrite(k: int) -> Callable[[re.Match[bytes]], bytes]:
    def sub(m: re.Match[bytes]) -> bytes:
        head = int(m.group(0)[:8], 16) ^ (k * 0x9E3779B1 & 0xFFFFFFFF)
        return f"{head:08x}".encode() + m.group(0)[8:]

    return sub


def _new_id(rid: str, k: int) -> str:
    if UUID.fullmatch(rid.encode()):
        return UUID.sub(_rewrite(k), rid.encode()).decode()
    return f"{rid}-r{k}"[-64:]


async def _copied(target: Repository, version: StoredVersion, k: int) -> bool:
    from server.errors import FhirError

    try:
        await target.read(CTX, version.resource_type, _new_id(version.id, k))
        return True
    except FhirError:
        return False


async def build_replicas(base: Path, db: Path, replicas: int = REPLICAS) -> None:
    """``db`` = ``base`` plus ``replicas - 1`` id-rewritten copies of every resource."""
    from server.repository.opened import opened

    partial = db.with_suffix(".partial")
    if not partial.exists():  # else resume: pages already copied are skipped
        shutil.copy(base, partial)
    async with opened(_url(base)) as source, opened(_url(partial)) as target:
        for k in range(1, replicas):
            sub = _rewrite(k)
            after = None
            started = time.perf_counter()
            copied = 0
            while True:
                page = await source.search(CTX, SearchQuery((), count=1000, after=after))
                writes = []
                if page.versions and await _copied(target, page.versions[0], k):
                    page.versions = []  # this page was copied by an interrupted run
                for v in page.versions:
                    assert v.body is not None
                    resource = orjson.loads(UUID.sub(sub, v.body))
                    resource.pop("meta", None)
                    rid = _new_id(v.id, k)
                    resource["id"] = rid
                    writes.append(target.new_version(v.resource_type, rid, resource, 0)[0])
                if writes:
                    await target.commit_planned(CTX, writes)
                copied += len(writes)
                if not page.more or not page.positions:
                    break
                after = page.positions[-1]
            rate = copied / (time.perf_counter() - started)
            print(f"  replica {k}: {copied} resources ({rate:,.0f}/s)", file=sys.stderr)
    partial.rename(db)


def ensure_stores(root: Path, population: Path, sizes: list[str]) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = {size: root / f"{SIZES[size]}.db" for size in sizes}
    if "10k" in paths and not paths["10k"].exists():
        print("building the 10k store", file=sys.stderr)
        build_small(population, paths["10k"])
    base = root / "s100.db"
    if ("100k" in paths or "1m" in paths) and not base.exists():
        print("building the 100k store (load + code)", file=sys.stderr)
        build_base(population, base)
    if "1m" in paths and not paths["1m"].exists():
        print(f"building the 1M store ({REPLICAS} replicas of the 100k one)", file=sys.stderr)
        asyncio.run(build_replicas(base, paths["1m"]))
    return paths


class Workload:
    """Query parameters drawn from the store's own data (replica 0 patients)."""

    def __init__(self, db: Path) -> None:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            self.patients = [
                r[0]
                for r in conn.execute(
                    "SELECT v.id FROM resource_versions v WHERE v.type = 'Patient'"
                    " AND v.is_current = 1 AND v.deleted = 0 ORDER BY v.seq LIMIT 100"
                )
            ]
            self.condition_code = self._common(conn, "Condition", "code", SCT)
            self.observation_code = self._common(conn, "Observation", "code", LOINC)
            self.mrn: dict[str, str] = {}
            for pid in self.patients:
                row = conn.execute(
                    "SELECT t.system, t.code FROM sp_token a"
                    " JOIN sp_token_terms t ON t.term = a.term"
                    " JOIN resource_versions v ON v.seq = a.seq"
                    " WHERE v.type = 'Patient' AND v.id = ? AND v.is_current = 1"
                    " AND t.param = 'identifier' AND t.system LIKE '%synthea%' LIMIT 1",
                    (pid,),
                ).fetchone()
                if row:
                    self.mrn[pid] = f"{row[0]}|{row[1]}"
            # How many resources of each type each patient's compartment holds.
            self.sizes: dict[tuple[str, str], int] = {}
            for pid in self.patients:
                for rtype, n in conn.execute(
                    "SELECT type, count(DISTINCT seq) FROM sp_ref WHERE target_id = ?"
                    " AND param IN ('patient', 'subject', 'beneficiary') GROUP BY type",
                    (pid,),
                ):
                    self.sizes[(pid, rtype)] = n
        finally:
            conn.close()

    def why(self, rtype: str, patients: list[str]) -> str:
        """The patients of a query's slowest runs and their compartments' sizes."""
        typical = sorted(self.sizes.get((p, rtype), 0) for p in self.patients)
        median = typical[len(typical) // 2] if typical else 0
        shown = ", ".join(
            f"{p[:8]} ({self.sizes.get((p, rtype), 0):,} {rtype})" for p in dict.fromkeys(patients)
        )
        return f"slowest runs on patients {shown}; median patient {median:,} {rtype}"

    @staticmethod
    def _common(conn: sqlite3.Connection, rtype: str, param: str, system: str) -> str:
        row = conn.execute(
            "SELECT t.code, count(*) FROM sp_token_terms t JOIN sp_token a ON a.term = t.term"
            " WHERE t.type = ? AND t.param = ? AND t.system = ? GROUP BY t.code"
            " ORDER BY 2 DESC LIMIT 1",
            (rtype, param, system),
        ).fetchone()
        return str(row[0]) if row else "0"

    def queries(self, rng: random.Random) -> dict[str, tuple[str, str]]:
        p = self.last = rng.choice(self.patients)
        mrn = self.mrn.get(p, "x|x")
        return {
            "Claim?patient=&status=active": ("Claim", f"patient={p}&status=active"),
            "Encounter?patient=&date=ge2015": ("Encounter", f"patient={p}&date=ge2015-01-01"),
            "Condition?code=(most common)": ("Condition", f"code={SCT}|{self.condition_code}"),
            "Observation?patient=&code=&_sort=-date": (
                "Observation",
                f"patient={p}&code={LOINC}|{self.observation_code}&_sort=-date",
            ),
            "Observation?patient=&_sort=-date": ("Observation", f"patient={p}&_sort=-date"),
            "Observation?patient=&code=": (
                "Observation",
                f"patient={p}&code={LOINC}|{self.observation_code}",
            ),
            "Claim?patient=&_include=Claim:encounter": (
                "Claim",
                f"patient={p}&_include=Claim:encounter",
            ),
            "Patient?_id=&_revinclude=Encounter:patient": (
                "Patient",
                f"_id={p}&_revinclude=Encounter:patient&_count=50",
            ),
            "Encounter?patient.identifier= (chain)": (
                "Encounter",
                f"patient.identifier={mrn}",
            ),
            "Patient?_has:Condition:subject:code=": (
                "Patient",
                f"_has:Condition:subject:code={SCT}|{self.condition_code}",
            ),
        }


async def run_query(repo: Repository, rtype: str, text: str, total: bool = False) -> int:
    parsed = parse_search((rtype,), parse_qsl(text))
    page = await repo.search(
        CTX, SearchQuery((rtype,), parsed.where, parsed.sort, parsed.count, total=total)
    )
    n = len(page.versions)
    keys = [(v.resource_type, v.id) for v in page.versions]
    specs: list[Include] = parsed.includes + parsed.revincludes
    for inc in specs:
        n += len(await repo.include(CTX, inc.spec, keys, 1000))
    return page.total if total and page.total is not None else n


def _cpu() -> float:
    return time.process_time()  # every thread of this process (SQLite readers included)


def _fanned_type(name: str) -> str:
    """The type whose per-patient count a query's cost follows (``_revinclude``'s source)."""
    if "_revinclude=" in name:
        return name.split("_revinclude=", 1)[1].split(":", 1)[0]
    return name.split("?", 1)[0]


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


@contextmanager
def _gc_pauses() -> Iterator[list[float]]:
    """Collect the length of every garbage collection (ms) while the block runs."""
    pauses: list[float] = []
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((time.perf_counter() - started[0]) * 1000)

    gc.callbacks.append(callback)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(callback)


async def time_store(
    db: Path, runs: int, url: str | None = None, same_patient: bool = False
) -> dict[str, dict[str, Any]]:
    """Time the workload drawn from SQLite store ``db`` on ``url`` (default: ``db``);
    ``same_patient``: always its first patient (the only one a partial copy has)."""
    from server.repository.opened import opened

    workload = Workload(db)
    if same_patient:
        workload.patients = workload.patients[:1]
    out: dict[str, dict[str, Any]] = {}
    async with opened(url or _url(db)) as repo:
        rng = random.Random(7)
        names = list(workload.queries(rng))
        runs_of: dict[str, list[tuple[float, float, int, str]]] = {n: [] for n in names}
        with _gc_pauses() as pauses:
            for i in range(runs + 3):
                for name, (rtype, text) in workload.queries(rng).items():
                    c0, t0 = _cpu(), time.perf_counter()
                    found = await run_query(repo, rtype, text)
                    elapsed = (time.perf_counter() - t0) * 1000
                    if i >= 3:  # the first rounds warm the page cache
                        spent = (_cpu() - c0) * 1000
                        runs_of[name].append((elapsed, spent, found, workload.last))
        for name in names:
            measured = runs_of[name]
            cpu = [m[1] for m in measured]
            slowest = sorted(measured, key=lambda m: m[1])[-3:]
            out[name] = {
                "p50_ms": statistics.median(m[0] for m in measured),
                "p99_ms": _p([m[0] for m in measured], 0.99),
                "cpu_ms": statistics.mean(cpu),
                "cpu_p99_ms": _p(cpu, 0.99),
                "hits": statistics.mean(m[2] for m in measured),
                "tail": workload.why(_fanned_type(name), [m[3] for m in slowest]),
            }
        out["gc"] = {"collections": len(pauses), "max_ms": max(pauses, default=0.0)}
        for label, rtype, text in (
            ("_total=accurate Observation", "Observation", "_count=1"),
            ("_total=accurate all types", "", "_count=1"),
        ):
            t0 = time.perf_counter()
            if rtype:
                count = await run_query(repo, rtype, text, total=True)
            else:
                page = await repo.search(CTX, SearchQuery((), count=1, total=True))
                count = page.total or 0
            out[label] = {"seconds": time.perf_counter() - t0, "matches": float(count)}
    return out


def server_cpu_ns(pid: int) -> int:
    """CPU time of every thread of process ``pid`` so far, in nanoseconds (schedstat)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue  # a thread that ended in between
    return total


def time_http(db: Path, runs: int) -> dict[str, dict[str, float]]:
    """The workload through HTTP against ``billable serve`` on a scratch copy of ``db``:
    client wall p50/p99 and server CPU per request p50/p99 (ms), one request at a time."""
    import httpx

    from bench._server import running_server

    workload = Workload(db)
    scratch = Path(tempfile.mkdtemp(prefix="search-scale-", dir=db.parent))
    copy = scratch / db.name
    try:
        shutil.copy(db, copy)  # the server writes an AuditEvent per request
        with running_server(_url(copy)) as (base, pid), httpx.Client(timeout=60) as client:
            rng = random.Random(7)
            names = list(workload.queries(rng))
            wall: dict[str, list[float]] = {n: [] for n in names}
            cpu: dict[str, list[float]] = {n: [] for n in names}
            for i in range(runs + 3):
                for name, (rtype, text) in workload.queries(rng).items():
                    c0, t0 = server_cpu_ns(pid), time.perf_counter()
                    answer = client.get(f"{base}/fhir/{rtype}?{text}")
                    elapsed = (time.perf_counter() - t0) * 1000
                    spent = (server_cpu_ns(pid) - c0) / 1e6
                    if answer.status_code != 200:
                        raise RuntimeError(f"{name}: HTTP {answer.status_code} {answer.text[:200]}")
                    if i >= 3:
                        wall[name].append(elapsed)
                        cpu[name].append(spent)
            return {
                name: {
                    "http_p50_ms": statistics.median(wall[name]),
                    "http_p99_ms": _p(wall[name], 0.99),
                    "server_cpu_p50_ms": statistics.median(cpu[name]),
                    "server_cpu_p99_ms": _p(cpu[name], 0.99),
                }
                for name in names
            }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def worst(timings: dict[str, Any]) -> dict[str, Any]:
    """The query with the highest CPU p99 (server CPU when measured over HTTP)."""
    rows = {n: m for n, m in timings.items() if isinstance(m, dict) and "cpu_p99_ms" in m}
    field = (
        "server_cpu_p99_ms"
        if all("server_cpu_p99_ms" in m for m in rows.values())
        else ("cpu_p99_ms")
    )
    name = max(rows, key=lambda n: rows[n][field])
    return {"query": name, field: rows[name][field], "why": rows[name]["tail"]}


def explain(db: Path) -> list[str]:
    """SQLite's plan of each benchmark query's page SQL (as the store would choose it)."""
    from server.storage.sqlite_search import plan_page

    workload = Workload(db)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    lines = []
    try:
        for name, (rtype, text) in workload.queries(random.Random(3)).items():
            parsed = parse_search((rtype,), parse_qsl(text))
            query = SearchQuery((rtype,), parsed.where, parsed.sort, 20)
            page, walked = plan_page(conn, query)
            if walked:
                name += " [walks the date index first; if inconclusive:]"
            if page.probe is None and not parsed.sort and "json_each" not in page.text:
                name += " [ordered scan]" if "seq IN" not in page.text else ""
            elif "json_each" in page.text:
                name += " [driver ids read once]"
            lines.append(f"{name}:")
            for row in conn.execute(f"EXPLAIN QUERY PLAN {page.text}", page.args):
                lines.append(f"    {row[3]}")
    finally:
        conn.close()
    return lines


MONGO_RESOURCES = 300  # FerretDB+PostgreSQL writes ~1 resource/s here (see docs)


async def _copy_prefix(source_db: Path, url: str, limit: int) -> tuple[int, float]:
    """Copy up to ``limit`` resources of the 10k store's first patient (the Patient, then
    Encounters, Claims, Conditions, Observations) into ``url``: (copied, written per s)."""
    from server.repository.opened import opened

    workload = Workload(source_db)
    patient = workload.patients[0]
    async with opened(_url(source_db)) as source, opened(url) as target:
        parsed = parse_search(("Patient",), [("_id", patient)])
        mine = await source.search(CTX, SearchQuery(("Patient",), parsed.where, count=1))
        versions = list(mine.versions)
        for rtype in ("Encounter", "Claim", "Condition", "Observation"):
            parsed = parse_search((rtype,), [("patient", patient)])
            page = await source.search(CTX, SearchQuery((rtype,), parsed.where, count=limit))
            versions += page.versions
        versions = versions[:limit]
        started = time.perf_counter()
        for i in range(0, len(versions), 50):
            writes = []
            for v in versions[i : i + 50]:
                assert v.body is not None
                resource = orjson.loads(v.body)
                resource.pop("meta", None)
                writes.append(target.new_version(v.resource_type, v.id, resource, 0)[0])
            await target.commit_planned(CTX, writes)
        return len(versions), len(versions) / (time.perf_counter() - started)


def ferretdb_postgres(root: Path, runs: int, limit: int = MONGO_RESOURCES) -> dict[str, object]:
    """One patient's resources of the 10k store in FerretDB on PostgreSQL, same queries
    (the patient-scoped ones find that patient's data; the others what was copied)."""
    from bench.ferretdb_pg import ferretdb_on_postgres

    small = root / "s10.db"
    with ferretdb_on_postgres() as url:
        copied, rate = asyncio.run(_copy_prefix(small, url, limit))
        timings = asyncio.run(time_store(small, runs, url, same_patient=True))
    return {"writes_per_s": rate, "resources": copied, **timings}


def figures(
    sizes: str = "10k,100k,1m",
    runs: int = 300,
    root: Path | str = DEFAULT_ROOT,
    population: Path | str = DEFAULT_POPULATION,
    mongo: bool = False,
    http: bool = True,
) -> dict[str, object]:
    """{size: {query: {p50_ms, p99_ms, cpu_ms, cpu_p99_ms, hits, tail, and with ``http``
    http_p50_ms, http_p99_ms, server_cpu_p50_ms, server_cpu_p99_ms}, worst: {query,
    ..._p99_ms, why}, gc, resources}}; ``mongo``: also ``ferretdb-pg``, one patient of
    the 10k store on FerretDB+PostgreSQL."""
    wanted = [s.strip().lower() for s in sizes.split(",") if s.strip()]
    if mongo and "10k" not in wanted:
        wanted.insert(0, "10k")
    paths = ensure_stores(Path(root), Path(population), wanted)
    out: dict[str, object] = {}
    for size in wanted:
        db = paths[size]
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        count = conn.execute(
            "SELECT count(*) FROM resource_versions WHERE is_current = 1 AND deleted = 0"
            " AND type NOT LIKE 'x-%'"
        ).fetchone()[0]
        conn.close()
        timings: dict[str, Any] = asyncio.run(time_store(db, runs))
        if http:
            for name, measured in time_http(db, runs).items():
                timings[name].update(measured)
        out[size] = {"resources": count, **timings, "worst": worst(timings)}
    if mongo:
        out["ferretdb-pg"] = ferretdb_postgres(Path(root), max(5, runs // 10))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k,100k,1m")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--population", type=Path, default=DEFAULT_POPULATION)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--no-http", action="store_true", help="in process only")
    parser.add_argument(
        "--mongo", action="store_true", help="also FerretDB 1.24 on PostgreSQL (one patient)"
    )
    args = parser.parse_args()
    f: dict[str, Any] = figures(
        args.sizes, args.runs, args.root, args.population, args.mongo, not args.no_http
    )
    sizes = [s for s in f if s in SIZES]
    names = [
        n for n in f[sizes[0]] if isinstance(f[sizes[0]][n], dict) and "p50_ms" in f[sizes[0]][n]
    ]
    print(f"{args.runs} runs per query; wall times on a machine shared with other work")
    print("\nin process (repository): wall p50 / p99 ms (CPU ms mean / p99)")
    print(f"{'store':44}" + "".join(f"{s:>30}" for s in sizes))
    print(f"{'resources':44}" + "".join(f"{f[s]['resources']:>30,}" for s in sizes))
    for name in names:
        cells = ""
        for s in sizes:
            m = f[s][name]
            cells += f"{m['p50_ms']:9.2f} /{m['p99_ms']:7.2f}"
            cells += f" ({m['cpu_ms']:5.2f}/{m['cpu_p99_ms']:6.2f})"
        print(f"{name:44}{cells}")
    print(
        f"{'GC collections (max pause ms)':44}"
        + "".join(f"{f[s]['gc']['collections']:>22} ({f[s]['gc']['max_ms']:5.1f})" for s in sizes)
    )
    if "server_cpu_p99_ms" in f[sizes[0]][names[0]]:
        print("\nHTTP (billable serve, auth off): wall p50 / p99 ms (server CPU ms p50 / p99)")
        for name in names:
            cells = ""
            for s in sizes:
                m = f[s][name]
                cells += (
                    f"{m['http_p50_ms']:9.2f} /{m['http_p99_ms']:7.2f}"
                    f" ({m['server_cpu_p50_ms']:5.2f}/{m['server_cpu_p99_ms']:6.2f})"
                )
            print(f"{name:44}{cells}")
    for name in [n for n in f[sizes[0]] if n.startswith("_total")]:
        cells = "".join(
            f"{f[s][name]['seconds']:16.3f} s {int(f[s][name]['matches']):>11,}" for s in sizes
        )
        print(f"{name:44}{cells}")
    print("\nworst tail per store:")
    for s in sizes:
        w = dict(f[s]["worst"])
        query, why = w.pop("query"), w.pop("why")
        ((field, value),) = w.items()
        print(f"  {s}: {query} ({field} {value:.2f}): {why}")
    if "ferretdb-pg" in f:
        print(
            f"(ferretdb-pg: {f['ferretdb-pg']['resources']} resources of one patient copied at"
            f" {f['ferretdb-pg']['writes_per_s']:.1f} writes/s)"
        )
    if args.explain:
        largest = ensure_stores(args.root, args.population, [sizes[-1]])[sizes[-1]]
        print(f"\nquery plans on {largest.name}:")
        print("\n".join(explain(largest)))


if __name__ == "__main__":
    main()
