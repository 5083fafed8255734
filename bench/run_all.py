"""Every performance figure of issues 17 and 18 in one table, on one Synthea population.

Each bench module has ``figures(**options) -> dict`` (its headline numbers); this script
imports them by name, runs each on the same population and prints one table (section,
figure, value), so that the next change can be compared in one run. A module that is
not there says "not available"; one that fails says why, and the others still run.
Options are passed to a module only if its ``figures`` takes them.

Usage:
    python -m bench.run_all [--population DIR] [--only read_perf,footprint] [--quick]
                            [--set MODULE.OPTION=VALUE ...] [--json OUT]

``make bench`` runs it. The figures are taken on whatever else the machine is doing:
wall-clock rates and latencies on a shared machine move with its load, server CPU per
request or resource (from /proc) much less.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import orjson

DEFAULT_POPULATION = Path("/work/pop/synthea-100/fed")
# (module, what it measures), in the order of the table.
MODULES = (
    ("ingest_perf", "ingest through HTTP transaction bundles (issue 18)"),
    ("ingest_perf:coding", "the same with automatic coding and adjudication (issue 18)"),
    ("big_bundle", "one large patient bundle: memory against size (issue 17)"),
    ("store_size", "store bytes per input byte (issue 17)"),
    ("read_perf", "read by id, auth on (issue 18)"),
    ("search_scale", "search latency as the store grows (issue 18)"),
    ("ferretdb_pg", "SQLite beside FerretDB 1.24 + PostgreSQL: ingest, reads, searches (issue 18)"),
    ("footprint", "idle memory, start-up, workers (issue 18)"),
    ("x12_bench", "X12 837/835 (issue 17 payers)"),
    ("coder_app_bench", "the coder app"),
)


# A bench run again with fixed options: "module:variant" -> those options.
VARIANTS: dict[str, dict[str, Any]] = {
    "ingest_perf:coding": {"coding": True, "stages": False},
}
# The name under which each bench's figures() takes the population folder (default
# "population"; None: the bench makes its own data; x12_bench's "population" is a store).
POPULATION_OPTION: dict[str, str | None] = {"ingest_perf": "folder", "x12_bench": None}
# --quick: smaller runs of each bench (a smoke run of the whole table in minutes).
QUICK = {
    "ingest_perf": {"patients": 10},
    "ingest_perf:coding": {"patients": 10},
    "big_bundle": {"megabytes": 20, "entries": 8000},
    "store_size": {"reads": 500},
    "read_perf": {"duration": 3.0, "per_type": 50},
    "search_scale": {"sizes": "10k", "runs": 20},
    "ferretdb_pg": {"resources": 2000, "reads": 50, "runs": 10},
    "footprint": {"seconds": 3},
    "x12_bench": {"claims": 200},
    "coder_app_bench": {"tasks": 1000, "runs": 10},
}


def _accepted(function: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The options ``function`` takes (all of them if it takes ``**kwargs``)."""
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return dict(options)
    names = {p.name for p in parameters}
    return {k: v for k, v in options.items() if k in names}


def run_module(name: str, options: dict[str, Any]) -> tuple[str, dict[str, object]]:
    """(status, figures) of one bench module (``module:variant``: with the variant's
    options): "ok", "not available" or "failed: ..."."""
    options = {**options, **VARIANTS.get(name, {})}
    name = name.partition(":")[0]
    try:
        module = importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as exc:
        if exc.name in (f"bench.{name}", "bench"):
            return "not available", {}
        return f"failed: {exc}", {}
    figures = getattr(module, "figures", None)
    if not callable(figures):
        return "not available (no figures())", {}
    try:
        values = figures(**_accepted(figures, options))
    except Exception as exc:  # one broken bench must not hide the others' figures
        traceback.print_exc(file=sys.stderr)
        return f"failed: {type(exc).__name__}: {exc}", {}
    if not isinstance(values, dict):
        return "failed: figures() returned no dict", {}
    return "ok", values


def flatten(values: dict[str, object], prefix: str = "") -> list[tuple[str, object]]:
    """Nested figures (``{size: {query: {p50_ms: ...}}}``) as ``size / query / p50_ms``."""
    out: list[tuple[str, object]] = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.extend(flatten(value, name + " / "))
        else:
            out.append((name, value))
    return out


def _parse_sets(items: list[str]) -> dict[str, dict[str, Any]]:
    """``module.option=value`` (repeatable) → {module: {option: value}}; numbers parsed."""
    chosen: dict[str, dict[str, Any]] = {}
    for item in items:
        target, _, text = item.partition("=")
        module, _, option = target.partition(".")
        value: Any = text
        for kind in (int, float):
            try:
                value = kind(text)
                break
            except ValueError:
                continue
        chosen.setdefault(module, {})[option] = value
    return chosen


def print_table(rows: list[tuple[str, str, str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    line = "  ".join("-" * w for w in widths)
    print(line)
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if index == 0:
            print(line)
    print(line)


def _shown(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--population", type=Path, default=DEFAULT_POPULATION)
    parser.add_argument("--only", help="comma-separated module names (default: all)")
    parser.add_argument("--quick", action="store_true", help="shorter runs (duration 3 s)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="MODULE.OPTION=VALUE",
        help="an option of one bench's figures(), e.g. search_scale.sizes=10k,100k",
    )
    args = parser.parse_args()
    chosen = set(args.only.split(",")) if args.only else None
    overrides = _parse_sets(args.set)
    if not args.population.is_dir():
        print(f"run_all: no population at {args.population}", file=sys.stderr)

    rows: list[tuple[str, str, str]] = [("bench", "figure", "value")]
    report: dict[str, object] = {"population": str(args.population), "started": time.time()}
    for name, about in MODULES:
        if chosen is not None and name not in chosen:
            continue
        print(f"run_all: {name} ({about}) ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        # The population goes to each bench under the name its figures() uses for it.
        option = POPULATION_OPTION.get(name.partition(":")[0], "population")
        options: dict[str, Any] = {option: args.population} if option else {}
        options.update(QUICK.get(name, {}) if args.quick else {})
        options.update(overrides.get(name, {}))
        status, values = run_module(name, options)
        seconds = time.monotonic() - started
        report[name] = {"status": status, "seconds": round(seconds, 1), "figures": values}
        if status != "ok" or not values:
            rows.append((name, about, status))
            continue
        for figure, value in flatten(values):
            rows.append((name, figure, _shown(value)))
    print(f"population: {args.population}")
    print_table(rows)
    if args.json:
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
