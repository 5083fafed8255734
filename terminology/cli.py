"""``billable terminology ...``: load official release files as new versions.

    billable terminology load KIND PATH [--version V] [--effective YYYY-MM-DD]
                                        [--until YYYY-MM-DD] [--data-dir DIR]
    billable terminology list [--data-dir DIR]

KIND ``mpfs-rvu``, ``mue`` and ``aoc`` read the release (RVU26C, 2026Q2) and its dates from
the CMS file name when ``--version``/``--effective`` are not given; ``icd10cm-addenda``
applies a CMS order-file addenda to the newest ICD-10-CM version loaded before it.

``load`` compiles the release file into the data directory (default
``./data/terminology``, or ``$BILLABLE_TERMINOLOGY_DIR``) and lists it in that directory's
``index.json``; a running server picks the new version up within a few seconds. Old
versions stay, so claims for past dates of service keep their codes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from terminology import catalog, store, systems
from terminology.service import DEFAULT_DATA_DIR

KINDS = (
    "icd10cm",
    "icd10cm-order",
    "icd10pcs",
    "hcpcs",
    "cpt",
    "snomed",
    "snomed-icd10cm-map",
    "conceptmap",
    "codesystem",
    "ncci-ptp",
    "mue",
    "mpfs-rvu",
    "mpfs-gpci",
    "mpfs-locality",
    "aoc",
    "icd10cm-addenda",
)


def _iso(value: str) -> date:
    return date.fromisoformat(value)


def compile_release(
    kind: str,
    path: Path,
    version: str | None,
    effective: date | None,
    until: date | None,
    data_dir: Path | None = None,
) -> dict[str, Any]:
    """Read an official release file of ``kind`` into a compiled table (a dict)."""
    from terminology.loaders import billing, cms_mpfs, icd10cm, ncci, other_systems, snomed
    from terminology.loaders.icd10cm_addenda import load_with_addenda

    loaders: dict[str, Callable[[], dict[str, Any]]] = {
        "icd10cm": lambda: store.codesystem_to_json(
            icd10cm.load_tabular_xml(path, int(version) if version else None, effective, until)
        ),
        "icd10cm-order": lambda: store.codesystem_to_json(
            icd10cm.load_order_file(path, int(_need(version, kind)), effective, until)
        ),
        "icd10pcs": lambda: store.codesystem_to_json(
            other_systems.load_pcs_order_file(path, int(_need(version, kind)), effective, until)
        ),
        "hcpcs": lambda: store.codesystem_to_json(
            other_systems.load_hcpcs(path, _need(version, kind), _need(effective, kind), until)
        ),
        "cpt": lambda: store.codesystem_to_json(
            other_systems.load_cpt(path, _need(version, kind), _need(effective, kind), until)
        ),
        "snomed": lambda: store.codesystem_to_json(
            snomed.load_rf2(path, version, effective, until)
        ),
        "snomed-icd10cm-map": lambda: store.conceptmap_to_json(
            snomed.load_extended_map(path, version, effective, until)
        ),
        "conceptmap": lambda: store.conceptmap_to_json(
            other_systems.load_curated_map(path, version, effective, until)
        ),
        "codesystem": lambda: store.codesystem_to_json(
            other_systems.load_curated_codesystem(path, version, effective, until)
        ),
        "ncci-ptp": lambda: billing.load_ptp(path, _need(version, kind), effective, until),
        "mue": lambda: ncci.load_mue(path, version, effective, until),
        "aoc": lambda: ncci.load_aoc(path, version, effective, until),
        "mpfs-rvu": lambda: cms_mpfs.load_rvu(path, version, effective, until),
        "mpfs-gpci": lambda: cms_mpfs.load_gpci(path, _need(version, kind), effective, until),
        "mpfs-locality": lambda: cms_mpfs.load_locco(path, _need(version, kind), effective, until),
        "icd10cm-addenda": lambda: store.codesystem_to_json(
            load_with_addenda(
                _previous_icd10cm(effective, data_dir),
                path,
                int(version) if version else None,
                effective,
                until,
            )
        ),
    }
    return loaders[kind]()


def _previous_icd10cm(effective: date | None, data_dir: Path | None) -> Any:
    """The newest loaded ICD-10-CM version before ``effective`` (the addenda's base)."""
    from terminology.service import TerminologyService

    service = TerminologyService(data_dir or DEFAULT_DATA_DIR)
    entries = [e for e in service.catalog("codesystem") if e.meta.url == systems.ICD10CM]
    if effective is not None:
        entries = [e for e in entries if e.meta.effective_from < effective]
    if not entries:
        raise ValueError("no earlier ICD-10-CM version is loaded to apply the addenda to")
    base = max(entries, key=lambda e: e.meta.effective_from)
    return base.load()


def _need(value: Any, kind: str) -> Any:
    if value is None:
        raise SystemExit(f"billable terminology load {kind}: --version and --effective are needed")
    return value


def load(
    kind: str,
    path: Path,
    version: str | None = None,
    effective: date | None = None,
    until: date | None = None,
    data_dir: Path | None = None,
) -> Path:
    data = compile_release(kind, path, version, effective, until, data_dir)
    meta = data["meta"]
    stem = catalog.file_stem(
        data["kind"], meta.get("name") or kind, meta["version"], _iso(meta["effective_from"])
    )
    return catalog.publish(data_dir or DEFAULT_DATA_DIR, stem, data)


def listing(service: Any) -> list[str]:
    """One line per table: kind, URL, release, the dates Billable applies it and CMS's own
    window when they differ, row count and SHA-256 of the release file it was read from."""
    out = []
    for entry in service.catalog():
        m = entry.meta
        line = f"{entry.kind:14} {m.url}  release {m.version}  in force {m.period()}"
        if m.official_from:
            end = m.official_to.isoformat() if m.official_to else "until superseded"
            line += f" (CMS window {m.official_from.isoformat()} to {end})"
        if entry.extra.get("rows"):
            line += f"  rows {entry.extra['rows']}"
        if entry.extra.get("source_file"):
            line += f"  from {entry.extra['source_file']} sha256 {entry.extra['sha256'][:16]}..."
        out.append(f"{line}  [{entry.path.name}]")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="billable terminology", description="Manage terminology versions"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_load = sub.add_parser("load", help="add a version from an official release file")
    p_load.add_argument("kind", choices=KINDS)
    p_load.add_argument("path", type=Path)
    p_load.add_argument("--version", help="release version, e.g. 2027 or 2026Q4")
    p_load.add_argument("--effective", type=_iso, help="first day in force (YYYY-MM-DD)")
    p_load.add_argument("--until", type=_iso, help="last day in force (YYYY-MM-DD)")
    p_load.add_argument("--data-dir", type=Path, default=None)
    p_list = sub.add_parser("list", help="list shipped and loaded versions")
    p_list.add_argument("--data-dir", type=Path, default=None)
    p_cache = sub.add_parser(
        "cache",
        help="build the on-disk form of every table now (at install; else on first use)",
    )
    p_cache.add_argument("--data-dir", type=Path, default=None)
    p_cache.add_argument(
        "--prune",
        action="store_true",
        help="remove cache files no table of this installation and data directory uses",
    )
    args = parser.parse_args(argv)

    if args.command == "load":
        if not args.path.exists():
            print(f"error: {args.path} does not exist", file=sys.stderr)
            return 2
        try:
            out = load(
                args.kind, args.path, args.version, args.effective, args.until, args.data_dir
            )
        except (ValueError, KeyError) as err:
            print(f"error: cannot read {args.path} as {args.kind}: {err}", file=sys.stderr)
            return 1
        data = store.read_file(out)
        meta = data["meta"]
        print(
            f"loaded {meta['title'] or meta['name']} version {meta['version']} "
            f"({meta['effective_from']} to {meta['effective_to'] or 'until superseded'}) "
            f"into {out}"
        )
        return 0
    from terminology.service import TerminologyService

    service = TerminologyService(args.data_dir)
    if args.command == "cache":
        return cache_command(service, args.prune)
    for line in listing(service):
        print(line)
    return 0


def cache_command(service: Any, prune: bool) -> int:
    """``billable terminology cache``: build every table's SQLite file (``BILLABLE_
    TERMINOLOGY_CACHE``, default ``~/.cache/billable/terminology``)."""
    from terminology import disk_build

    entries = service.catalog()
    catalog.ensure_caches(entries)
    used = {entry.ensure_cache() for entry in entries}
    directory = disk_build.cache_dir()
    size = sum(p.stat().st_size for p in used) / 2**20
    print(f"{len(used)} tables on disk in {directory} ({size:.1f} MiB)")
    if prune:
        stale = [p for p in directory.glob(f"*{disk_build.SUFFIX}") if p not in used]
        for path in stale:
            path.unlink(missing_ok=True)
        print(f"removed {len(stale)} cache files no table uses")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
