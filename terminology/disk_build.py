"""Building the on-disk form of a compiled table: one read-only SQLite file per table.

A compiled file (``terminology.store``) is the shipped, reviewable form of a table; its
parsed form costs 30-65 MiB of Python objects for one ICD-10-CM year. So each compiled
file is turned once into an SQLite file in a cache directory, named by the SHA-256 of
the compiled file's bytes (and of what is merged into it while parsing, and the layout
version), and queried on demand (``terminology.disk_tables``). A changed file, a changed
catalog supplement or a new layout gives another name, so a stale cache is never read;
nothing is shipped in binary form.

Large tables are built in a child process so the server's heap never holds their parsed
form (Python keeps freed memory in its arenas); several processes starting at once (one
server per worker) build each file once, under a file lock, and publish it atomically.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import astuple
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from terminology import store
from terminology.catalog_supplement import SUPPLEMENT

LAYOUT = 1  # bump when the SQLite layout below changes: every cache file is rebuilt
SUFFIX = ".sqlite3"
# Compiled files larger than this (gzip'd bytes) are built in a child process.
CHILD_BUILD_BYTES = 64 * 1024

# The keys of each row table (``key1``, ``key2``) and the date fields of its rows.
ROW_KINDS: dict[str, tuple[str, str]] = {
    "ncci-ptp": ("column1", "column2"),
    "mue": ("code", ""),
    "mpfs-rvu": ("code", "modifier"),
    "aoc": ("addon", ""),
    "mpfs-gpci": ("locality", ""),
    "mpfs-locality": ("mac", "number"),
}
KINDS = ("codesystem", "conceptmap", *ROW_KINDS)


def cache_dir() -> Path:
    """``BILLABLE_TERMINOLOGY_CACHE``, else ``$XDG_CACHE_HOME/billable/terminology``
    (``~/.cache/...``); a private directory under the system temp dir when that one
    cannot be written (a read-only home in a container)."""
    configured = os.environ.get("BILLABLE_TERMINOLOGY_CACHE")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    wanted = base / "billable" / "terminology"
    try:
        wanted.mkdir(parents=True, exist_ok=True)
        if os.access(wanted, os.W_OK):
            return wanted
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"billable-terminology-{os.getuid()}"


def content_key(path: Path, kind: str) -> str:
    """The name part that changes whenever what the table would contain changes."""
    digest = hashlib.sha256(f"billable-terminology-cache/{LAYOUT}/{kind}\n".encode())
    digest.update(path.read_bytes())
    if kind == "codesystem":  # merged into code systems while parsing
        digest.update(orjson.dumps(SUPPLEMENT, option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()[:24]


def cache_file(path: Path, kind: str, directory: Path | None = None) -> Path:
    stem = path.name.removesuffix(".gz").removesuffix(".json")
    return (directory or cache_dir()) / f"{stem}.{content_key(path, kind)}{SUFFIX}"


def ensure(items: Iterable[tuple[Path, str]], directory: Path | None = None) -> list[Path]:
    """The cache file of every (compiled file, kind), building the missing ones: small
    ones here, large ones in one child process."""
    targets = [(src, kind, cache_file(src, kind, directory)) for src, kind in items]
    missing = [(s, k, d) for s, k, d in targets if not d.exists()]
    large = [(s, k, d) for s, k, d in missing if s.stat().st_size > CHILD_BUILD_BYTES]
    for src, kind, dst in missing:
        if (src, kind, dst) not in large:
            build(src, kind, dst)
    if large:
        args = [str(part) for item in large for part in item]
        subprocess.run(
            [sys.executable, "-m", "terminology.disk_build", *args],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return [dst for _, _, dst in targets]


@contextmanager
def _locked(dst: Path) -> Iterator[None]:
    dst.parent.mkdir(parents=True, exist_ok=True)
    # One lock per cache directory: another process may be building the same file.
    with open(dst.parent / ".build.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build(src: Path, kind: str, dst: Path) -> Path:
    """Write ``dst`` from the compiled file ``src`` (once: a finished file is kept)."""
    with _locked(dst):
        if dst.exists():
            return dst
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        conn = sqlite3.connect(tmp)
        try:
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            data = store.read_file(src)
            meta: dict[str, Any] = {"kind": kind, "layout": LAYOUT, "source": src.name}
            if kind == "codesystem":
                meta.update(_write_codesystem(conn, data))
            elif kind == "conceptmap":
                meta.update(_write_conceptmap(conn, data))
            elif kind in ROW_KINDS:
                meta.update(_write_rows(conn, kind, data))
            else:
                raise ValueError(f"unknown table kind {kind!r}")
            conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID")
            conn.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [(k, orjson.dumps(v).decode()) for k, v in meta.items()],
            )
            conn.commit()
        finally:
            conn.close()
        os.replace(tmp, dst)  # readers see a finished file or none
    return dst


def _json(value: Any) -> str | None:
    return orjson.dumps(value).decode() if value else None


def _write_codesystem(conn: sqlite3.Connection, data: dict[str, Any]) -> dict[str, Any]:
    # Parsed with the loader's own code, so the catalog supplement and the hierarchy are
    # exactly what the in-memory form had.
    cs = store.codesystem_from_json(data)
    conn.execute(
        "CREATE TABLE concept (code TEXT PRIMARY KEY, seq INTEGER NOT NULL, display TEXT,"
        " parent TEXT, flags INTEGER, valid_from TEXT, valid_to TEXT, properties TEXT,"
        " children TEXT, notes TEXT) WITHOUT ROWID"
    )
    rows = []
    for seq, c in enumerate(cs.concepts.values()):
        flags = (store.BILLABLE if c.billable else 0) | (
            store.MANIFESTATION if c.manifestation else 0
        )
        rows.append(
            (
                c.code,
                seq,
                c.display,
                c.parent,
                flags,
                c.valid_from.isoformat() if c.valid_from else None,
                c.valid_to.isoformat() if c.valid_to else None,
                _json(c.properties),
                "\n".join(c.children) if c.children else None,
                _json(cs.notes.get(c.code)),
            )
        )
    conn.executemany("INSERT INTO concept VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    conn.execute("CREATE UNIQUE INDEX concept_seq ON concept (seq)")
    # Notes written at codes the release does not list (rare) are kept beside them.
    orphans = [(code, _json(n)) for code, n in cs.notes.items() if code not in cs.concepts]
    conn.execute("CREATE TABLE orphan_note (code TEXT PRIMARY KEY, notes TEXT) WITHOUT ROWID")
    conn.executemany("INSERT INTO orphan_note VALUES (?, ?)", orphans)
    return {
        "count": len(rows),
        "content": cs.content,
        "notes": sum(1 for n in cs.notes.values() if n),
    }


def _write_conceptmap(conn: sqlite3.Connection, data: dict[str, Any]) -> dict[str, Any]:
    cm = store.conceptmap_from_json(data)  # the loader's de-duplication applies
    conn.execute(
        "CREATE TABLE target (source TEXT NOT NULL, seq INTEGER PRIMARY KEY, code TEXT,"
        " display TEXT, equivalence TEXT, map_group INTEGER, map_priority INTEGER,"
        " rule TEXT, sex TEXT, age_min REAL, age_max REAL, advice TEXT)"
    )
    rows = [(src, None, *astuple(t)) for src, targets in cm.entries.items() for t in targets]
    conn.executemany("INSERT INTO target VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    conn.execute("CREATE INDEX target_source ON target (source, seq)")
    conn.execute("CREATE TABLE source_display (code TEXT PRIMARY KEY, display TEXT) WITHOUT ROWID")
    conn.executemany("INSERT INTO source_display VALUES (?, ?)", cm.source_displays.items())
    return {
        "source_system": cm.source_system,
        "target_system": cm.target_system,
        "sources": len(cm.entries),
        "source_displays": len(cm.source_displays),
    }


def row_fields(row: Any) -> list[Any]:
    """A row dataclass as JSON-able values (dates as ISO strings)."""
    return [v.isoformat() if isinstance(v, date) else v for v in astuple(row)]


def _write_rows(conn: sqlite3.Connection, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    parsers: dict[str, Callable[[dict[str, Any]], list[Any]]] = {
        "ncci-ptp": store.ptp_from_json,
        "mue": store.mue_from_json,
        "mpfs-rvu": store.rvu_from_json,
        "aoc": store.aoc_from_json,
        "mpfs-gpci": store.gpci_from_json,
        "mpfs-locality": store.locality_from_json,
    }
    parse = parsers[kind]
    first, second = ROW_KINDS[kind]
    conn.execute(
        "CREATE TABLE row (seq INTEGER PRIMARY KEY, key1 TEXT, key2 TEXT, body TEXT NOT NULL)"
    )
    rows = [
        (
            None,
            getattr(r, first),
            getattr(r, second) if second else "",
            orjson.dumps(row_fields(r)).decode(),
        )
        for r in parse(data)
    ]
    conn.executemany("INSERT INTO row VALUES (?, ?, ?, ?)", rows)
    conn.execute("CREATE INDEX row_key ON row (key1, key2, seq)")
    return {"count": len(rows)}


def main(argv: list[str]) -> int:
    """``python -m terminology.disk_build SRC KIND DST [SRC KIND DST ...]``."""
    if len(argv) % 3:
        print("usage: python -m terminology.disk_build SRC KIND DST ...", file=sys.stderr)
        return 2
    for i in range(0, len(argv), 3):
        build(Path(argv[i]), argv[i + 1], Path(argv[i + 2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
