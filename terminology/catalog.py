"""The catalog: which compiled tables exist in a data directory, without loading them.

Every data directory (the shipped ``terminology/data/`` and the user's
``./data/terminology/``) has an ``index.json`` listing its files with their kind, URL,
version and effective dates, so start-up reads a few kilobytes and each table is loaded
the first time somebody asks for it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from terminology import disk_build, disk_tables, store
from terminology.model import Meta

INDEX = "index.json"


@dataclass(slots=True)
class Entry:
    """One compiled file; ``load()`` opens its on-disk form once and keeps the view
    (same shape as the parsed table: Mappings for code systems and maps, Sequences for
    billing tables)."""

    kind: str
    meta: Meta
    path: Path
    extra: dict[str, Any]
    _table: Any = None
    _cache: Path | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self) -> Any:
        if self._table is None:
            with self._lock:
                if self._table is None:
                    cache = self.ensure_cache()
                    self._table = disk_tables.open_table(self.kind, self.meta, cache)
        return self._table

    def ensure_cache(self) -> Path:
        """The cache file of this table, built now if it is missing."""
        if self._cache is None:
            self._cache = disk_build.ensure([(self.path, self.kind)])[0]
        return self._cache

    @property
    def loaded(self) -> bool:
        return self._table is not None


def ensure_caches(entries: list[Entry]) -> None:
    """Build the missing cache files of ``entries`` in one go (one child process for the
    large ones), so a first start does not build them one by one."""
    todo = [e for e in entries if e._cache is None]
    for entry, path in zip(todo, disk_build.ensure([(e.path, e.kind) for e in todo]), strict=True):
        entry._cache = path


def parse(kind: str, data: dict[str, Any]) -> Any:
    """The in-memory form of a compiled table (loaders and tests that build tables)."""
    if kind == "codesystem":
        return store.codesystem_from_json(data)
    if kind == "conceptmap":
        return store.conceptmap_from_json(data)
    if kind == "ncci-ptp":
        return store.ptp_from_json(data)
    if kind == "mue":
        return store.mue_from_json(data)
    if kind == "mpfs-rvu":
        return store.rvu_from_json(data)
    if kind == "mpfs-gpci":
        return store.gpci_from_json(data)
    if kind == "mpfs-locality":
        return store.locality_from_json(data)
    if kind == "aoc":
        return store.aoc_from_json(data)
    raise ValueError(f"unknown table kind {kind!r}")


def read_index(directory: Path) -> list[Entry]:
    index = directory / INDEX
    if not index.exists():
        return []
    rows = orjson.loads(index.read_bytes())
    return [
        Entry(
            kind=row["kind"],
            meta=Meta.from_json(row["meta"]),
            path=directory / row["file"],
            extra={k: v for k, v in row.items() if k not in ("kind", "meta", "file")},
        )
        for row in rows
    ]


def index_mtime(directory: Path) -> float:
    try:
        return os.stat(directory / INDEX).st_mtime_ns / 1e9
    except FileNotFoundError:
        return 0.0


def add_to_index(directory: Path, file: Path, data: dict[str, Any]) -> None:
    """Register a compiled file in ``directory/index.json`` (replacing a same-named one)."""
    directory.mkdir(parents=True, exist_ok=True)
    index = directory / INDEX
    rows: list[dict[str, Any]] = orjson.loads(index.read_bytes()) if index.exists() else []
    rows = [r for r in rows if r["file"] != file.name]
    row: dict[str, Any] = {"file": file.name, "kind": data["kind"], "meta": data["meta"]}
    keys = ("source", "target", "content", "count", "setting", "source_file", "sha256", "rows")
    for key in keys:
        if key in data and not isinstance(data[key], list | dict):
            row[key] = data[key]
    rows.append(row)
    rows.sort(key=lambda r: (r["kind"], r["meta"]["url"], r["meta"]["effective_from"]))
    tmp = index.with_name(f".{INDEX}.tmp")
    tmp.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
    os.replace(tmp, index)


def publish(directory: Path, stem: str, data: dict[str, Any]) -> Path:
    """Write a compiled table into ``directory`` and list it in the index."""
    path = store.write_file(directory / f"{stem}.json.gz", data)
    add_to_index(directory, path, data)
    return path


def file_stem(kind: str, name: str, version: str, effective: date) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in f"{name}-{version}")
    return f"{kind}-{safe}-{effective.isoformat()}"


def pick(entries: list[Entry], day: date | None) -> tuple[Entry | None, list[str]]:
    """The entry in force on ``day`` (the most recently effective wins), or the nearest one
    with a warning when no loaded version covers the day."""
    if not entries:
        return None, []
    ordered = sorted(entries, key=lambda e: e.meta.effective_from)

    # A complete release (e.g. a loaded SNOMED CT snapshot) wins over a shipped fragment;
    # between equals, the one listed last (the user's data directory comes after the shipped
    # tables) wins, so a loaded release replaces a shipped one with the same dates.
    position = {id(e): i for i, e in enumerate(entries)}

    def rank(e: Entry) -> tuple[bool, date, int]:
        complete = e.extra.get("content", "complete") != "fragment"
        return complete, e.meta.effective_from, position[id(e)]

    if day is None:
        return max(ordered, key=rank), []
    covering = [e for e in ordered if e.meta.covers(day)]
    if covering:
        return max(covering, key=rank), []
    later = [e for e in ordered if e.meta.effective_from > day]
    chosen = ordered[-1] if not later else later[0]
    if chosen is ordered[-1] and (chosen.meta.effective_to or day) < day:
        return chosen, [
            f"No {chosen.meta.name} release loaded for {day.isoformat()}; answered from "
            f"version {chosen.meta.version} ({chosen.meta.period()}). Load the newer release."
        ]
    return None, []
