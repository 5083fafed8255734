"""Read by id with auth on: requests/s per server core, p50/p99 for 1 and 10 clients.

Every request carries a real bearer token (RS256, validated by the server), passes the
SMART policy and appends one hash-chained AuditEvent before it is answered: the figures
include all of that. The load comes from ``wrk`` (compiled, so the client is not the
bottleneck; Debian package ``wrk``). Server CPU per request is taken from
``/proc/<pid>/stat`` (utime + stime of the server process, all threads), so
"requests/s per core" stays meaningful on a shared machine; wall-clock figures (req/s,
latencies) were taken on whatever else the machine was doing.

The store is the Synthea population (``/work/pop/synthea-100/fed`` by default, loaded
once with ``billable load`` and cached under ``$BILLABLE_BENCH_CACHE``, default
``~/.cache/billable/bench``), copied afresh for each run because reads write audit events.
The ids read are a sample of every resource type of the population, read round-robin.

Usage:
    python -m bench.read_perf [--population DIR] [--patients N] [--duration S]
                              [--profile OUT] [--no-auth-off]

``--profile OUT`` records the server with py-spy during the 10-client run and prints
its top frames (collapsed stacks in OUT). Figures only; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from bench._server import running_server

DEFAULT_POPULATION = Path("/work/pop/synthea-100/fed")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLIENT_ID = "read-perf"
# AuditEvent is never covered by a wildcard: named so that the bench can count them.
SCOPE = "system/*.rs system/AuditEvent.rs"
SAMPLE_TYPES = (
    "Patient",
    "Encounter",
    "Condition",
    "Observation",
    "Procedure",
    "Coverage",
    "MedicationRequest",
    "DiagnosticReport",
    "Immunization",
    "Claim",
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Round-robin over the sampled paths; prints one parseable line at the end.
WRK_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("READ_PERF_PATHS")) do paths[#paths + 1] = line end
local i = math.random(#paths)
request = function()
  i = (i % #paths) + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  io.write(string.format("READ_PERF %d %d %d %d %d %d %d %d\\n",
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
"""


# -- the load generator ------------------------------------------------------------------


def locate_wrk(install: bool = True) -> str | None:
    """``wrk`` on PATH; installs Debian's package when allowed (root with apt-get)."""
    found = shutil.which("wrk")
    if found or not install:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("read_perf: installing wrk (apt-get install -y wrk)", file=sys.stderr)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"],
            capture_output=True,
            check=False,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    return shutil.which("wrk")


def server_cpu_s(pid: int) -> float:
    """utime + stime of a process (every thread), in seconds, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def run_wrk(
    wrk: str, base: str, paths_file: Path, token: str | None, connections: int, seconds: float
) -> dict[str, float]:
    """One wrk run: requests, errors, p50/p99/p99.9/max in ms."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    command = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        script.name,
        "-H",
        "Accept: application/fhir+json",
    ]
    if token is not None:
        command += ["-H", f"Authorization: Bearer {token}"]
    try:
        done = subprocess.run(
            [*command, base],
            capture_output=True,
            text=True,
            env={**os.environ, "READ_PERF_PATHS": str(paths_file)},
            check=True,
        )
    finally:
        os.unlink(script.name)
    line = next(x for x in done.stdout.splitlines() if x.startswith("READ_PERF "))
    requests, duration_us, bad_status, socket_errors, p50, p99, p999, worst = (
        int(v) for v in line.split()[1:]
    )
    return {
        "requests": requests,
        "seconds": duration_us / 1e6,
        "bad_status": bad_status,
        "socket_errors": socket_errors,
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
        "p999_ms": p999 / 1000,
        "max_ms": worst / 1000,
    }


def measured_run(
    wrk: str,
    base: str,
    pid: int,
    paths_file: Path,
    token: str | None,
    connections: int,
    seconds: float,
) -> dict[str, float]:
    """A wrk run with the server's CPU time over it: requests per server-CPU second."""
    before = server_cpu_s(pid)
    result = run_wrk(wrk, base, paths_file, token, connections, seconds)
    cpu = server_cpu_s(pid) - before
    result["server_cpu_s"] = cpu
    result["rps_wall"] = result["requests"] / result["seconds"]
    result["rps_per_core"] = result["requests"] / cpu if cpu > 0 else float("nan")
    result["cpu_us_per_request"] = cpu / result["requests"] * 1e6 if result["requests"] else 0
    return result


def wait_until_idle(pid: int, limit_s: float = 60.0) -> None:
    """Wait for the server's start-up work (terminology warm-up) to finish."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = server_cpu_s(pid)
        time.sleep(0.5)
        if server_cpu_s(pid) - before < 0.02:
            return


# -- the store ------------------------------------------------------------------------------


def cache_dir() -> Path:
    return Path(
        os.environ.get("BILLABLE_BENCH_CACHE", Path.home() / ".cache" / "billable" / "bench")
    )


def population_files(population: Path, patients: int) -> tuple[list[Path], list[Path]]:
    """(shared bundles loaded first: hospitals, practitioners; the patients' bundles)."""
    files = sorted(population.glob("*.json"))
    shared = [f for f in files if f.name.startswith(("hospitalInformation", "practitioner"))]
    people = [f for f in files if f not in shared]
    return shared, people[:patients] if patients > 0 else people


def loaded_store(population: Path, patients: int) -> Path:
    """An SQLite file with the population loaded (built once, then reused from the cache)."""
    shared, people = population_files(population, patients)
    key = hashlib.sha256(
        "\n".join(f"{f.name}:{f.stat().st_size}" for f in shared + people).encode()
    ).hexdigest()[:12]
    target = cache_dir() / f"read-perf-{population.name}-{len(people)}-{key}.db"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.with_name(target.name + ".building")
    for stale in target.parent.glob(building.name + "*"):
        stale.unlink()
    url = f"sqlite:///{building}"
    print(f"read_perf: loading {len(people)} patients into {target} (once)", file=sys.stderr)
    for group in (shared, people):
        subprocess.run(
            [sys.executable, "-m", "server.cli", "load", "--store", url, "--quiet"]
            + [str(f) for f in group],
            check=True,
        )
    # Fold the WAL into the file so that one file is the whole store.
    import sqlite3

    with sqlite3.connect(building) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    building.rename(target)
    for suffix in ("-wal", "-shm"):
        Path(str(building) + suffix).unlink(missing_ok=True)
    return target


@contextmanager
def fresh_copy(store: Path) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="read-perf-") as tmp:
        copy = Path(tmp) / "store.db"
        shutil.copyfile(store, copy)
        yield copy


# -- tokens ---------------------------------------------------------------------------------


def register_client(store_url: str, directory: Path) -> RSAKey:
    """A backend client (private_key_jwt) allowed to read everything."""
    key = RSAKey.generate_key(2048, parameters={"kid": "read-perf"})
    jwks = directory / "read-perf.jwks.json"
    jwks.write_text(json.dumps(KeySet([key]).as_dict(private=False)))
    subprocess.run(
        [sys.executable, "-m", "server.cli", "clients", "add", CLIENT_ID, "--kind", "backend"]
        + ["--jwks", str(jwks), "--scope", SCOPE, "--store", store_url],
        check=True,
        capture_output=True,
    )
    return key


def access_token(base: str, key: RSAKey) -> str:
    token_url = f"{base}/auth/token"
    claims = {
        "iss": CLIENT_ID,
        "sub": CLIENT_ID,
        "aud": token_url,
        "exp": int(time.time()) + 240,
        "jti": uuid.uuid4().hex,
    }
    assertion = jwt.encode({"alg": "RS384", "kid": key.kid}, claims, key, algorithms=["RS384"])
    response = httpx.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "scope": SCOPE,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def sample_paths(base: str, token: str | None, per_type: int) -> list[str]:
    """Paths ``/fhir/Type/id`` of up to ``per_type`` resources of each sampled type."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    paths: list[str] = []
    with httpx.Client(timeout=60, headers=headers) as http:
        for rtype in SAMPLE_TYPES:
            r = http.get(f"{base}/fhir/{rtype}", params={"_count": per_type})
            r.raise_for_status()
            for entry in r.json().get("entry", []):
                paths.append(f"/fhir/{rtype}/{entry['resource']['id']}")
    return paths


# -- profile --------------------------------------------------------------------------------


_LINE = re.compile(r":\d+\)$")


def top_frames(collapsed: Path, count: int = 15) -> list[tuple[str, float, float]]:
    """(function, % of samples as the leaf, % of samples anywhere on the stack), by the
    leaf share; samples are taken only while a thread holds the GIL (``--gil``)."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = [_LINE.sub(")", f) for f in stack.split(";")]  # by function, not line
        samples = int(n)
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            anywhere[frame] += samples
    if not total:
        return []
    return [(f, 100 * n / total, 100 * anywhere[f] / total) for f, n in own.most_common(count)]


@contextmanager
def profiling(pid: int, out: Path | None, seconds: float) -> Iterator[None]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if out is None or not Path(spy).exists():
        if out is not None:
            print("read_perf: py-spy not found (pip install py-spy); no profile", file=sys.stderr)
        yield
        return
    proc = subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--format", "raw", "--output", str(out)]
        + ["--duration", str(max(1, round(seconds))), "--rate", "250", "--nonblocking", "--gil"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        proc.wait(timeout=seconds + 60)


# -- the figures ----------------------------------------------------------------------------

# Runs `billable serve` from another source tree (``--baseline-tree``: an earlier release,
# e.g. ``git archive main | tar -x -C DIR``), on plain asyncio and h11 as it had them.
BASELINE_LAUNCHER = (
    "-c",
    "import os, sys; sys.path.insert(0, os.environ['READ_PERF_TREE']);"
    " sys.modules['uvloop'] = sys.modules['httptools'] = None;"
    " from server.cli import main; sys.exit(main())",
)


def _server_options(baseline_tree: str | Path | None) -> dict[str, Any]:
    if baseline_tree is None:
        return {}
    tree = str(Path(baseline_tree).resolve())
    return {"extra_env": {"READ_PERF_TREE": tree}, "launcher": BASELINE_LAUNCHER}


# The two ways a request's audit record is made durable (docs/security.md): committed to
# the store before the answer (the default), or queued in the crash-safe local journal.
AUDIT_MODES = {"committed": {}, "journal": {"BILLABLE_AUDIT_JOURNAL": "1"}}


def _auth_runs(
    wrk: str,
    store: Path,
    mode: str,
    duration: float,
    per_type: int,
    profile: Path | None,
    baseline_tree: str | Path | None,
) -> tuple[dict[str, dict[str, float]], int, object, Path]:
    """1- and 10-client runs with auth on, on a fresh copy of the store."""
    runs: dict[str, dict[str, float]] = {}
    with fresh_copy(store) as copy, tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{copy}"
        key = register_client(url, Path(tmp))
        paths_file = Path(tmp) / "paths.txt"
        options = _server_options(baseline_tree)
        options["extra_env"] = {**options.get("extra_env", {}), **AUDIT_MODES[mode]}
        with running_server(url, ("--auth", "smart"), **options) as (base, pid):
            token = access_token(base, key)
            paths = sample_paths(base, token, per_type)
            paths_file.write_text("\n".join(paths) + "\n")
            wait_until_idle(pid)
            run_wrk(wrk, base, paths_file, token, 10, 2)  # warm-up
            for clients in (1, 10):
                out = profile if clients == 10 else None
                with profiling(pid, out, duration):
                    runs[f"{clients}"] = measured_run(
                        wrk, base, pid, paths_file, token, clients, duration
                    )
            audited = _audit_events(base, token)
        kept = Path(tempfile.mkstemp(prefix="read-perf-paths-", suffix=".txt")[1])
        shutil.copyfile(paths_file, kept)
    return runs, len(paths), audited, kept


def figures(
    population: str | Path = DEFAULT_POPULATION,
    patients: int = 0,
    duration: float = 10.0,
    per_type: int = 200,
    auth_off: bool = True,
    profile: str | Path | None = None,
    baseline_tree: str | Path | None = None,
    modes: tuple[str, ...] = ("committed", "journal"),
    **_ignored: Any,
) -> dict[str, object]:
    """Headline figures of reads by id with auth on, for each audit mode, and auth off."""
    population = Path(population)
    wrk = locate_wrk()
    if wrk is None:
        return {"skipped": "wrk not found (apt-get install wrk)"}
    if not population.is_dir():
        return {"skipped": f"no population at {population}"}
    if baseline_tree is not None:
        modes = ("committed",)  # an earlier release has no journal
    store = loaded_store(population, patients)
    result: dict[str, object] = {}
    paths_file: Path | None = None
    for mode in modes:
        out = Path(f"{profile}.{mode}") if profile else None
        runs, sampled, audited, paths_file = _auth_runs(
            wrk, store, mode, duration, per_type, out, baseline_tree
        )
        one, ten = runs["1"], runs["10"]
        tag = f"read, auth on, audit {mode}"
        result["read: ids sampled (round-robin)"] = sampled
        result.update(
            {
                f"{tag}: requests/s per server core (10 clients)": round(ten["rps_per_core"]),
                f"{tag}: server CPU µs/request (10 clients)": round(ten["cpu_us_per_request"]),
                f"{tag}: server CPU µs/request (1 client)": round(one["cpu_us_per_request"]),
                f"{tag}: p50 ms, 1 client": round(one["p50_ms"], 2),
                f"{tag}: p99 ms, 1 client": round(one["p99_ms"], 2),
                f"{tag}: p50 ms, 10 clients": round(ten["p50_ms"], 2),
                f"{tag}: p99 ms, 10 clients": round(ten["p99_ms"], 2),
                f"{tag}: requests/s wall, 10 clients (loaded machine)": round(ten["rps_wall"]),
                f"{tag}: non-2xx answers": int(one["bad_status"] + ten["bad_status"]),
                f"{tag}: AuditEvents in the store after the runs": audited,
            }
        )
        if out is not None:
            result[f"{tag}: profile (py-spy collapsed stacks)"] = str(out)
    if auth_off and paths_file is not None:
        with fresh_copy(store) as copy:
            url = f"sqlite:///{copy}"
            options = _server_options(baseline_tree)
            with running_server(url, ("--auth", "off"), **options) as (base, pid):
                wait_until_idle(pid)
                run_wrk(wrk, base, paths_file, None, 10, 2)
                off = measured_run(wrk, base, pid, paths_file, None, 10, duration)
        result["read, auth off: requests/s per server core (10 clients)"] = round(
            off["rps_per_core"]
        )
        result["read, auth off: server CPU µs/request (10 clients)"] = round(
            off["cpu_us_per_request"]
        )
        result["read, auth off: p50 ms, 10 clients"] = round(off["p50_ms"], 2)
    if paths_file is not None:
        paths_file.unlink(missing_ok=True)
    return result


def _audit_events(base: str, token: str) -> int | str:
    """How many AuditEvents the store holds (one per request is the point)."""
    r = httpx.get(
        f"{base}/fhir/AuditEvent",
        params={"_summary": "count", "_total": "accurate"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    if r.status_code != 200:
        return f"HTTP {r.status_code}"
    total = r.json().get("total")
    return int(total) if isinstance(total, int) else "?"


def print_table(values: dict[str, object]) -> None:
    width = max(len(k) for k in values)
    for name, value in values.items():
        print(f"{name:<{width}}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--population", type=Path, default=DEFAULT_POPULATION)
    parser.add_argument("--patients", type=int, default=0, help="first N patients (0: all)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--per-type", type=int, default=200, help="ids sampled per type")
    parser.add_argument("--profile", type=Path, help="py-spy collapsed stacks of the 10-client run")
    parser.add_argument("--no-auth-off", action="store_true", help="skip the --auth off run")
    parser.add_argument(
        "--modes", default="committed,journal", help="audit modes to measure (comma-separated)"
    )
    parser.add_argument(
        "--baseline-tree", type=Path, help="run the server from this source tree (before/after)"
    )
    args = parser.parse_args()
    values = figures(
        population=args.population,
        patients=args.patients,
        duration=args.duration,
        per_type=args.per_type,
        auth_off=not args.no_auth_off,
        profile=args.profile,
        baseline_tree=args.baseline_tree,
        modes=tuple(args.modes.split(",")),
    )
    print_table(values)
    for name, value in values.items():
        if name.endswith("profile (py-spy collapsed stacks)") and Path(str(value)).exists():
            print(f"\ntop frames of {value} (% of samples as leaf, % anywhere on the stack):")
            for frame, leaf, anywhere in top_frames(Path(str(value))):
                print(f"  {leaf:5.1f}%  {anywhere:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
