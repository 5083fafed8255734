"""Footprint and workers: idle memory, start-up, memory per terminology table, lookup
cost, and throughput of reads by id with 1 and 2 worker processes.

    .venv/bin/python -m bench.footprint [--baseline DIR] [--seconds 10] [--connections 16]

Prints figures, never pass/fail. Every figure comes from real processes: ``billable
serve`` on a fresh SQLite store for idle memory and start-up (warm terminology cache:
the first start after a release change also builds the cache, reported apart); one
child process per table for its memory (the on-disk view after 2,000 look-ups, and the
parsed form the tables used to be held in); in-process look-ups timed over fixed code
samples; and ``wrk`` against ``billable serve --workers N`` with SMART auth on (token
check and audit included), with the server's CPU time from /proc (all its processes),
and, from the audit lanes' heads, how many lanes (processes) appended and how many
events each audit commit carried; SMART auth runs with each read's audit committed
(the default) and queued in the audit journal ("journal", ``BILLABLE_AUDIT_JOURNAL=1``).
``--baseline DIR`` runs the look-up timings also against another checkout (e.g.
``git archive`` of the commit before) for a before/after table. Wall figures taken on a
shared machine vary with its load; CPU per request varies less.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._server import free_port, rss_mib  # noqa: E402
from tests.support.serve import stop, wait_until_healthy  # noqa: E402

LOOKUP_CHILD = r"""
import json, random, sys, tempfile, time
from datetime import date
t0 = time.perf_counter()
from terminology import systems
from terminology.service import TerminologyService
def rss():
    status = open('/proc/self/status').read().splitlines()
    return next(int(l.split()[1]) for l in status if l.startswith('VmRSS:')) / 1024
r0 = rss()
s = TerminologyService(data_dir=tempfile.mkdtemp())
s.preload()
t1 = time.perf_counter()
r1 = rss()
day = date(2026, 3, 2)
cs, _ = s.code_system(systems.ICD10CM, day)
codes = [c for c, x in cs.concepts.items() if x.billable]
rvus = [r.code for r in next(iter(s.catalog("mpfs-rvu"))).load() if not r.modifier]
mues = [m.code for m in next(iter(s.catalog("mue"))).load()]
sources = [src for cm in s.concept_maps(day) if cm.meta.url == systems.MAP_SNOMED_ICD10CM
           for src in cm.entries]
rng = random.Random(7)
def timed(fn, items, rounds=1):  # CPU time of this process: the machine is shared
    start = time.process_time()
    for _ in range(rounds):
        for x in items:
            fn(x)
    return (time.process_time() - start) / (len(items) * rounds) * 1e6
out = {"load_s": t1 - t0, "rss_import_mib": r0, "rss_loaded_mib": r1}
cold = rng.sample(codes, 20000)
out["icd_lookup_cold_us"] = timed(lambda c: s.lookup(systems.ICD10CM, c, day), cold)
hot = [rng.choice(codes) for _ in range(300)]
timed(lambda c: s.lookup(systems.ICD10CM, c, day), hot)
out["icd_lookup_hot_us"] = timed(lambda c: s.lookup(systems.ICD10CM, c, day), hot, 30)
out["icd_validate_hot_us"] = timed(lambda c: s.validate_code(systems.ICD10CM, c, day), hot, 30)
rv_cold = rng.sample(rvus, min(5000, len(rvus)))
out["rvu_cold_us"] = timed(lambda c: s.rvu(c, day), rv_cold)
rv_hot = [rng.choice(rvus) for _ in range(300)]
timed(lambda c: s.rvu(c, day), rv_hot)
out["rvu_hot_us"] = timed(lambda c: s.rvu(c, day), rv_hot, 30)
out["fee_hot_us"] = timed(lambda c: s.fee(c, day, "01112-05"), rv_hot, 30)
mue_hot = [rng.choice(mues) for _ in range(300)]
timed(lambda c: s.mue(c, day), mue_hot)
out["mue_hot_us"] = timed(lambda c: s.mue(c, day), mue_hot, 30)
pairs = [(rng.choice(rv_hot), rng.choice(rv_hot)) for _ in range(300)]
timed(lambda p: s.ncci_edits(p[0], p[1], day), pairs)
out["ncci_hot_us"] = timed(lambda p: s.ncci_edits(p[0], p[1], day), pairs, 30)
timed(lambda c: s.addons(c, day), rv_hot)
out["addons_hot_us"] = timed(lambda c: s.addons(c, day), rv_hot, 30)
timed(lambda c: s.translate(systems.SNOMED, c, systems.ICD10CM, day, 40, "female"), sources)
out["translate_hot_us"] = timed(
    lambda c: s.translate(systems.SNOMED, c, systems.ICD10CM, day, 40, "female"), sources, 30)
out["rss_after_lookups_mib"] = rss()
print(json.dumps(out))
"""

TABLE_CHILD = r"""
import json, random, sqlite3, sys, tempfile
from terminology import catalog, store
from terminology.disk_build import ROW_KINDS
from terminology.service import TerminologyService
def rss():
    status = open('/proc/self/status').read().splitlines()
    return next(int(l.split()[1]) for l in status if l.startswith('VmRSS:')) / 1024
name = sys.argv[1]
s = TerminologyService(data_dir=tempfile.mkdtemp())
entry = next(e for e in s.catalog() if e.path.name == name)
path = entry.ensure_cache()
# The keys to look up, read before measuring (straight from the file).
raw = sqlite3.connect(path)
sql = {"codesystem": "SELECT code, '' FROM concept", "conceptmap": "SELECT source, '' FROM target"}
keys = [tuple(k) for k in raw.execute(sql.get(entry.kind, "SELECT key1, key2 FROM row"))]
raw.close()
keys = random.Random(3).sample(keys, min(2000, len(keys)))
r0 = rss()
table = entry.load()
for k1, k2 in keys:
    if entry.kind == "codesystem":
        table.concepts.get(k1)
    elif entry.kind == "conceptmap":
        table.entries.get(k1)
    else:
        table.find(k1, k2)
r1 = rss()
parsed = catalog.parse(entry.kind, store.read_file(entry.path))
r2 = rss()
print(json.dumps({"on_disk_mib": r1 - r0, "parsed_mib": r2 - r1,
                  "cache_mib": path.stat().st_size / 2**20}))
"""


def _child(code: str, *args: str, root: Path = ROOT) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _cpu_seconds(pids: list[int], children: bool = False) -> float:
    """utime + stime of ``pids`` (with ``children``: and of their waited-for children,
    e.g. the process that builds the terminology cache)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks = int(fields[11]) + int(fields[12])
        if children:
            ticks += int(fields[13]) + int(fields[14])
        total += ticks / os.sysconf("SC_CLK_TCK")
    return total


def _pss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:
            continue
        for child in children:
            found.extend(_tree(int(child)))
    return found


class Server:
    """A ``billable serve`` process on a free port (its public base URL set to it, so a
    store reused by the next server is not pinned to an old port)."""

    def __init__(self, store_url: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        args = (*args, "--base-url", f"{self.base}/fhir")
        self.store_url = store_url
        self.log = tempfile.TemporaryFile()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(self.port),
             "--store", store_url, *args],
            env={**os.environ, **(env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until_healthy(self.base, self.proc, self._log_tail, timeout_s=120, poll_s=0.02)
        self.startup_s = time.perf_counter() - self.started
        self.startup_cpu_s = _cpu_seconds(self.pids(), children=True)

    def pids(self) -> list[int]:
        return _tree(self.proc.pid)

    def rss_mib(self) -> float:
        return sum(rss_mib(p) for p in self.pids())

    def pss_mib(self) -> float:
        return sum(_pss_mib(p) for p in self.pids())

    def settle(self, quiet_s: float = 2.0, limit_s: float = 60.0) -> float:
        """Wait until memory stops changing (the warm-up has finished); the resident MiB."""
        last, since, deadline = self.rss_mib(), time.monotonic(), time.monotonic() + limit_s
        while time.monotonic() < deadline:
            time.sleep(0.25)
            now = self.rss_mib()
            if abs(now - last) > 0.5:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                break
        return last

    def _log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read()[-2000:].decode(errors="replace")

    def stop(self) -> None:
        stop(self.proc, grace_s=30)


def idle_figures(workdir: Path) -> dict[str, Any]:
    """Start-up and idle memory of ``billable serve`` (auth off, then SMART on)."""
    out: dict[str, Any] = {}
    for label, env in (("", {}), ("_cold_cache", {"BILLABLE_TERMINOLOGY_CACHE": str(workdir)})):
        # Cold: an empty cache directory, as on the first start after a release change.
        server = Server(f"sqlite:///{workdir / f'idle{label}.db'}", "--auth", "off", env=env)
        try:
            out[f"startup{label}_s"] = server.startup_s
            out[f"startup{label}_cpu_s"] = server.startup_cpu_s
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # the terminology catalog is published
                r = httpx.get(f"{server.base}/fhir/CodeSystem", params={"_summary": "count"})
                if r.status_code == 200 and r.json().get("total", 0) > 0:
                    break
                time.sleep(0.05)
            out[f"terminology_ready{label}_s"] = time.perf_counter() - server.started
            out[f"terminology_ready{label}_cpu_s"] = _cpu_seconds(server.pids(), children=True)
            out[f"idle_rss_auth_off{label}_mib"] = server.settle()
        finally:
            server.stop()
    server = Server(f"sqlite:///{workdir / 'idle-smart.db'}")
    try:
        out["idle_rss_mib"] = server.settle()
        out["idle_pss_mib"] = server.pss_mib()
    finally:
        server.stop()
    server = Server(f"sqlite:///{workdir / 'idle-2.db'}", "--workers", "2")
    try:
        out["idle_rss_2_workers_mib"] = server.settle()
        out["idle_pss_2_workers_mib"] = server.pss_mib()  # shared pages counted once
    finally:
        server.stop()
    return out


def table_figures() -> list[dict[str, Any]]:
    from terminology.service import TerminologyService

    service = TerminologyService(data_dir=tempfile.mkdtemp())
    rows = []
    for entry in service.catalog():
        if entry.path.stat().st_size < 20_000:
            continue  # the small tables: well under 1 MiB either way
        found = _child(TABLE_CHILD, entry.path.name)
        rows.append({"table": entry.path.name.removesuffix(".json.gz"), **found})
    return rows


def _seed(workdir: Path, n: int) -> tuple[str, list[str]]:
    """A store with ``n`` Patients (one transaction), and their ids."""
    store_url = f"sqlite:///{workdir / 'reads.db'}"
    server = Server(store_url, "--auth", "off", "--coding", "manual")
    try:
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
                    "resource": {"resourceType": "Patient", "name": [{"family": f"Read{i}"}]},
                    "request": {"method": "POST", "url": "Patient"},
                }
                for i in range(n)
            ],
        }
        r = httpx.post(
            f"{server.base}/fhir",
            json=bundle,
            headers={"Content-Type": "application/fhir+json"},
            timeout=120,
        )
        r.raise_for_status()
        ids = [e["response"]["location"].split("/")[1] for e in r.json()["entry"]]
    finally:
        server.stop()
    return store_url, ids


def _wrk(url: str, ids: list[str], token: str, seconds: int, connections: int) -> dict[str, Any]:
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    listed = ",".join(f'"{i}"' for i in ids)
    script.write(
        f'ids = {{{listed}}}\nn = 0\nwrk.headers["Authorization"] = "Bearer {token}"\n'
        "request = function()\n  n = n + 1\n"
        '  return wrk.format("GET", "/fhir/Patient/" .. ids[(n % #ids) + 1])\nend\n'
    )
    script.close()
    done = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
    )
    os.unlink(script.name)
    text = done.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)

    def pct(label: str) -> float:
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", text)
        if not m:
            return float("nan")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
        return float(m.group(1)) * scale

    return {
        "rps": rps,
        "requests": total,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
    }


def _audit_heads(store_url: str) -> dict[int, tuple[int, int]]:
    """lane -> (head version = commits, seq = events) of every audit lane in the store."""
    import asyncio

    import orjson

    from server.audit.verify import lanes_in_store
    from server.repository import Repository
    from server.storage.factory import create_store

    async def run() -> dict[int, tuple[int, int]]:
        store = create_store(store_url)
        await store.open()
        try:
            heads = await lanes_in_store(Repository(store).records)
            return {
                lane: (head.version, int(orjson.loads(head.body)["seq"]))
                for lane, head in heads.items()
                if head is not None and head.body is not None
            }
        finally:
            await store.close()

    return asyncio.run(run())


def worker_figures(
    workdir: Path,
    seconds: int,
    connections: int,
    workers: tuple[int, ...] = (1, 2),
    auth: tuple[str, ...] = ("smart", "journal", "off"),
) -> list[dict[str, Any]]:
    if shutil.which("wrk") is None:
        return [{"workers": n, "error": "wrk not installed (Debian package wrk)"} for n in workers]
    store_url, ids = _seed(workdir, 500)
    rows = []
    for mode, n in ((m, n) for m in auth for n in workers):
        # "journal": SMART auth with the audit journal (BILLABLE_AUDIT_JOURNAL=1).
        server = Server(
            store_url, "--workers", str(n), "--coding", "manual",
            "--auth", "off" if mode == "off" else "smart",
            env={"BILLABLE_AUDIT_JOURNAL": "1" if mode == "journal" else "0"},
        )  # fmt: skip
        try:
            server.settle(quiet_s=1.0, limit_s=30)
            token = "none" if mode == "off" else subprocess.run(
                [sys.executable, "-m", "server.cli", "token", "--store", store_url,
                 "--scope", "system/Patient.rs", "--base-url", f"{server.base}/fhir"],
                capture_output=True, text=True, check=True,
            ).stdout.strip().split()[-1]  # fmt: skip
            # One warm-up pass (pins the base URL, opens connections, fills caches).
            _wrk(server.base, ids, token, 2, connections)
            pids = server.pids()
            heads0 = _audit_heads(store_url)
            each0 = {pid: _cpu_seconds([pid]) for pid in pids}
            found = _wrk(server.base, ids, token, seconds, connections)
            each = {pid: _cpu_seconds([pid]) - each0[pid] for pid in pids}
            # One audit lane per process (server/audit/lanes.py): how many appended, and
            # how many events each group commit carried (fewer per process with more).
            heads1 = _audit_heads(store_url)
            grown = {
                lane: (v - heads0.get(lane, (0, 0))[0], n - heads0.get(lane, (0, 0))[1])
                for lane, (v, n) in heads1.items()
                if n > heads0.get(lane, (0, 0))[1]
            }
            commits = sum(c for c, _ in grown.values())
            found["audit_lanes"] = len(grown)
            found["audit_events_per_commit"] = (
                sum(e for _, e in grown.values()) / commits if commits else float("nan")
            )
            cpu = sum(each.values())
            # The kernel hands each new connection to whichever worker accepts first: a
            # burst of keep-alive connections may all land on one (see docs/performance.md).
            found["busiest_process_cpu_share"] = max(each.values()) / cpu if cpu else 1.0
            found["server_cpu_us_per_request"] = cpu / max(found["requests"], 1) * 1e6
            found["rps_per_server_core"] = found["requests"] / cpu if cpu else float("nan")
            rows.append({"auth": mode, "workers": n, **found})
        finally:
            server.stop()
    return rows


def figures(
    baseline: str | None = None,
    seconds: int = 10,
    connections: int = 16,
    only: str | None = None,
    **_: object,
) -> dict[str, object]:
    """The headline numbers (``bench/run_all.py`` imports this); ``only="workers"`` (or
    idle, lookups, tables) measures one part."""
    workdir = Path(tempfile.mkdtemp(prefix="billable-footprint-"))
    try:
        out: dict[str, object] = {}
        if only in (None, "idle"):
            out.update(idle_figures(workdir))
        if only in (None, "lookups"):
            out["lookups"] = _child(LOOKUP_CHILD)
            if baseline:
                out["lookups_baseline"] = _child(LOOKUP_CHILD, root=Path(baseline))
        if only in (None, "tables"):
            out["tables"] = table_figures()
        if only in (None, "workers"):
            out["workers"] = worker_figures(workdir, seconds, connections)
        return out
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", help="another checkout to time the look-ups against")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--only", choices=("idle", "lookups", "tables", "workers"))
    args = parser.parse_args()
    found = figures(args.baseline, args.seconds, args.connections, args.only)
    report(found)


def report(found: dict[str, Any]) -> None:
    if "startup_s" in found:
        for label, name in (("", "warm cache"), ("_cold_cache", "cold cache (builds it)")):
            print(
                f"start-up, {name}: /healthz after {found[f'startup{label}_s']:.2f} s wall,"
                f" {found[f'startup{label}_cpu_s']:.2f} s CPU; terminology catalog published"
                f" after {found[f'terminology_ready{label}_s']:.2f} s wall,"
                f" {found[f'terminology_ready{label}_cpu_s']:.2f} s CPU; then idle RSS"
                f" {found[f'idle_rss_auth_off{label}_mib']:.0f} MiB (auth off)"
            )
        print(
            f"idle RSS, SMART auth: {found['idle_rss_mib']:.0f} MiB"
            f" (PSS {found['idle_pss_mib']:.0f}); 2 workers (all processes):"
            f" RSS {found['idle_rss_2_workers_mib']:.0f} MiB,"
            f" PSS {found['idle_pss_2_workers_mib']:.0f}"
        )
    if "tables" in found:
        print("\nmemory per table (MiB): on disk = view + 2,000 look-ups; parsed = the dicts")
        print(f"{'table':58} {'on disk':>8} {'parsed':>8} {'file':>7}")
        for row in found["tables"]:
            print(
                f"{row['table']:58} {row['on_disk_mib']:8.1f} {row['parsed_mib']:8.1f}"
                f" {row['cache_mib']:7.1f}"
            )
    if "lookups" in found:
        lookups: dict[str, float] = found["lookups"]
        before: dict[str, float] = found.get("lookups_baseline") or {}
        print(f"\n{'look-up (in-process, CPU, mean)':32} {'now':>10} {'baseline':>10}")
        for key, value in lookups.items():
            if key.endswith("_us"):
                was = f"{before[key]:10.1f}" if key in before else f"{'':>10}"
                print(f"{key:32} {value:10.1f} {was}")
        for key in ("load_s", "rss_loaded_mib", "rss_after_lookups_mib"):
            was = f"{before[key]:10.2f}" if key in before else f"{'':>10}"
            print(f"{key:32} {lookups[key]:10.2f} {was}")
    if "workers" in found:
        print("\nreads by id (wrk, loopback; server CPU from /proc, every server process)")
        head = ("auth", "workers", "req/s", "p50 ms", "p99 ms", "CPU us/req", "non-2xx", "busiest",
                "lanes", "events/commit")  # fmt: skip
        widths = (7, 7, 8, 7, 7, 10, 7, 7, 5, 13)
        print(" ".join(f"{h:>{w}}" for h, w in zip(head, widths, strict=True)))
        for row in found["workers"]:
            if "error" in row:
                print(f"{row['workers']:>15} {row['error']}")
                continue
            print(
                f"{row['auth']:>7} {row['workers']:>7} {row['rps']:8.0f} {row['p50_ms']:7.2f}"
                f" {row['p99_ms']:7.2f} {row['server_cpu_us_per_request']:10.0f}"
                f" {row['non_2xx']:7} {row['busiest_process_cpu_share']:7.0%}"
                + (
                    f" {row['audit_lanes']:5} {row['audit_events_per_commit']:13.1f}"
                    if row.get("audit_lanes")
                    else f" {'-':>5} {'-':>13}"  # auth off: nothing audited
                )
            )


if __name__ == "__main__":
    main()
