"""Store size per resource on a Synthea population (prints figures, never pass/fail).

    .venv/bin/python -m bench.store_size [--population DIR] [--measure DB] [--reads 2000]

Loads the population (default ``/work/pop/synthea-100/fed``, or ``$BILLABLE_POPULATION``)
with ``billable load`` into a fresh SQLite store (the store checkpoints and truncates
its WAL when the load closes it), then reports database + WAL bytes by part (bodies and
version rows, each index table with its indexes, interned terms) against the input
JSON bytes, and what a read costs: the body decode alone and ``Store.read`` end to
end. ``--measure DB`` skips the load and measures an existing store instead (any
layout: that is how the "before" figure of a store written by 0.3 was taken).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_POPULATION = Path(os.environ.get("BILLABLE_POPULATION", "/work/pop/synthea-100/fed"))

# dbstat object name prefix -> part of the report
PARTS = [
    ("resource_versions", "versions (bodies + version rows)"),
    ("sqlite_autoindex_resource_versions", "versions (bodies + version rows)"),
    ("body_dictionaries", "body dictionaries"),
    ("sp_token_terms", "interned terms"),
    ("sp_string_terms", "interned terms"),
    ("sp_token", "token index"),
    ("sp_string", "string index"),
    ("sp_ref", "reference index"),
    ("sp_date", "date index"),
    ("sp_quantity", "quantity index"),
    ("sp_number", "number index"),
    ("sp_uri", "uri index"),
    ("sp_composite", "composite index"),
]


def input_bytes(population: Path) -> tuple[int, int]:
    files = [p for p in population.rglob("*") if p.suffix in (".json", ".ndjson")]
    return sum(p.stat().st_size for p in files), len(files)


def _part(name: str) -> str:
    for prefix, part in PARTS:
        if name.startswith(prefix):
            return part
    return "other"


def measure(db: Path) -> dict[str, object]:
    """Bytes on disk of ``db`` (+ WAL), by part, and its resource count."""
    wal = Path(f"{db}-wal")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        parts: dict[str, int] = {}
        for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
            parts[_part(name)] = parts.get(_part(name), 0) + int(size)
        resources = conn.execute(
            "SELECT count(*) FROM resource_versions WHERE is_current = 1 AND deleted = 0"
            " AND type NOT LIKE 'x-%'"
        ).fetchone()[0]
        layout = conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()
    return {
        "layout": layout,
        "resources": resources,
        "db_bytes": db.stat().st_size,
        "wal_bytes": wal.stat().st_size if wal.exists() else 0,
        "parts": dict(sorted(parts.items(), key=lambda kv: -kv[1])),
    }


def load(population: Path, db: Path) -> tuple[float, float]:
    """``billable load`` the population; (wall s, CPU s of the loading process)."""
    started = time.perf_counter()
    before = os.times()
    subprocess.run(
        [sys.executable, "-m", "server.cli", "load", str(population), "--quiet", "--store",
         f"sqlite:///{db}"],
        check=True,
    )  # fmt: skip
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return time.perf_counter() - started, cpu


async def read_costs(db: Path, reads: int, open_store: bool) -> dict[str, float]:
    """µs per body decode and per ``Store.read`` (p50, p99) on random current resources.

    ``open_store`` False: decode only (opening a store of an older layout would upgrade it).
    """
    from server.storage.sqlite import SQLiteStore
    from server.storage.sqlite_bodies import BodyCodec

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    keys = conn.execute(
        "SELECT type, id FROM resource_versions WHERE is_current = 1 AND deleted = 0"
        " AND type NOT LIKE 'x-%' ORDER BY random() LIMIT ?",
        (reads,),
    ).fetchall()
    blobs = [
        conn.execute(
            "SELECT body FROM resource_versions WHERE type = ? AND id = ? AND is_current = 1",
            key,
        ).fetchone()[0]
        for key in keys
    ]
    codec = BodyCodec()
    decode: list[float] = []
    for blob in blobs:
        started = time.perf_counter()
        codec.decode(conn, blob)
        decode.append((time.perf_counter() - started) * 1e6)
    conn.close()
    decode.sort()
    out = {
        "decode_us_p50": statistics.median(decode),
        "decode_us_p99": decode[int(len(decode) * 0.99)],
    }
    if not open_store:
        return out
    store = SQLiteStore(db)
    await store.open()
    read: list[float] = []
    try:
        random.shuffle(keys)
        for rtype, rid in keys:
            started = time.perf_counter()
            await store.read(rtype, rid)
            read.append((time.perf_counter() - started) * 1e6)
    finally:
        await store.close()
    read.sort()
    out["read_us_p50"] = statistics.median(read)
    out["read_us_p99"] = read[int(len(read) * 0.99)]
    return out


def figures(
    population: Path | str = DEFAULT_POPULATION,
    measure_db: Path | str | None = None,
    reads: int = 2000,
    keep: Path | str | None = None,
) -> dict[str, object]:
    """Headline numbers: store bytes per input byte, bytes per resource, read costs."""
    population = Path(population)
    in_bytes, files = input_bytes(population)
    out: dict[str, object] = {"population": str(population), "input_bytes": in_bytes,
                              "input_files": files}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="billable-size-") as tmp:
        if measure_db is not None:
            db = Path(measure_db)
        else:
            db = Path(keep) if keep else Path(tmp) / "billable.db"
            wall, cpu = load(population, db)
            out["load_wall_s"] = round(wall, 1)
            out["load_cpu_s"] = round(cpu, 1)
        sizes = measure(db)
        out.update(sizes)
        total = int(sizes["db_bytes"]) + int(sizes["wal_bytes"])  # type: ignore[call-overload]
        resources = int(sizes["resources"]) or 1  # type: ignore[call-overload]
        out["store_bytes"] = total
        out["store_per_input"] = round(total / in_bytes, 2)
        out["bytes_per_resource"] = round(total / resources)
        out["input_bytes_per_resource"] = round(in_bytes / resources)
        if reads:
            from server.storage.sqlite_schema import LAYOUT

            costs = asyncio.run(read_costs(db, reads, open_store=sizes["layout"] == LAYOUT))
            out.update({k: round(v, 1) for k, v in costs.items()})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=Path, default=DEFAULT_POPULATION)
    parser.add_argument("--measure", type=Path, default=None, help="an existing store file")
    parser.add_argument("--keep", type=Path, default=None, help="load into this file, keep it")
    parser.add_argument("--reads", type=int, default=2000)
    args = parser.parse_args()
    f = figures(args.population, args.measure, args.reads, args.keep)
    mb = 1e6
    print(
        f"population: {f['population']} ({f['input_files']} files, {f['input_bytes'] / mb:.1f} MB)"
    )
    if "load_wall_s" in f:
        print(f"load: {f['load_wall_s']} s wall, {f['load_cpu_s']} s CPU (loaded machine)")
    print(f"store layout {f['layout']}: {f['resources']} resources")
    print(f"{'part':36} {'MB':>9} {'B/resource':>11}")
    resources = int(f["resources"]) or 1  # type: ignore[call-overload]
    for part, size in f["parts"].items():  # type: ignore[attr-defined]
        print(f"{part:36} {size / mb:9.1f} {size / resources:11.0f}")
    print(f"{'database file':36} {int(f['db_bytes']) / mb:9.1f}")  # type: ignore[call-overload]
    print(f"{'WAL after close':36} {int(f['wal_bytes']) / mb:9.1f}")  # type: ignore[call-overload]
    print(
        f"store: {int(f['store_bytes']) / mb:.1f} MB = {f['store_per_input']}x the input JSON;"  # type: ignore[call-overload]
        f" {f['bytes_per_resource']} B per resource (input {f['input_bytes_per_resource']} B)"
    )
    if "decode_us_p50" in f:
        print(f"body decode: p50 {f['decode_us_p50']} µs, p99 {f['decode_us_p99']} µs")
    if "read_us_p50" in f:
        print(f"Store.read (decode included): p50 {f['read_us_p50']} µs, p99 {f['read_us_p99']} µs")


if __name__ == "__main__":
    main()
