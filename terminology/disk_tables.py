"""Read-only views of the on-disk tables (``terminology.disk_build``), with the same
shape as the in-memory ones: a code system's ``concepts`` and ``notes`` and a concept
map's ``entries`` are ``Mapping``s, billing tables are ``Sequence``s with keyed look-ups.

Each table is one SQLite connection opened ``immutable`` (no locking, the file never
changes: a new release is another file), guarded by a lock so threads share it, with a
small page cache; the codes asked for most recently are kept as parsed objects in a
bounded LRU, so the coding engine's repeated look-ups of the same few hundred codes cost
a dictionary hit, and a cold code one indexed query (a few microseconds).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any, Generic, TypeVar, overload

import orjson

from terminology import store
from terminology.model import (
    AddOn,
    CodeSystemVersion,
    Concept,
    ConceptMapVersion,
    Gpci,
    Locality,
    MapTarget,
    Meta,
    Mue,
    PtpEdit,
    Rvu,
)

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")

PAGE_CACHE_KIB = 1024  # per table; the OS page cache holds the rest (not our RSS)
HOT_CODES = 4096  # parsed objects kept per table
CHUNK = 2000  # rows fetched per query while iterating a whole table


class Lru(Generic[K, V]):
    """A bounded least-recently-used map (a dict keeps insertion order)."""

    __slots__ = ("_data", "_size", "_lock")

    def __init__(self, size: int) -> None:
        self._data: dict[K, V] = {}
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: K, load: Callable[[K], V]) -> V:
        data = self._data
        try:
            value = data.pop(key)
        except KeyError:
            value = load(key)
            with self._lock:
                if len(data) >= self._size:
                    try:
                        del data[next(iter(data))]
                    except (KeyError, RuntimeError, StopIteration):
                        pass  # another thread evicted first
        data[key] = value
        return value

    def __len__(self) -> int:
        return len(self._data)


class TableFile:
    """One cache file: a shared read-only connection and its metadata."""

    def __init__(self, path: Path) -> None:
        self.path = path
        uri = f"file:{path}?mode=ro&immutable=1"
        self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        self._conn.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
        self._lock = threading.Lock()
        self.meta: dict[str, Any] = {
            k: orjson.loads(v) for k, v in self.all("SELECT key, value FROM meta")
        }

    def one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        with self._lock:
            return self._conn.execute(sql, args).fetchone()

    def all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def chunks(self, sql: str, first: Any) -> Iterator[Any]:
        """Rows of ``sql`` (``WHERE seq > ? ... ORDER BY seq LIMIT ?``, seq last in the
        row) in chunks, so a caller may look other things up while iterating."""
        after = first
        while True:
            rows = self.all(sql, (after, CHUNK))
            yield from rows
            if len(rows) < CHUNK:
                return
            after = rows[-1][-1]

    def close(self) -> None:
        self._conn.close()


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


# ------------------------------------------------------------------ code systems
_CONCEPT_COLUMNS = "code, display, parent, flags, valid_from, valid_to, properties, children"


def _concept(row: Any) -> Concept:
    code, display, parent, flags, valid_from, valid_to, properties, children = row[:8]
    return Concept(
        code=code,
        display=display,
        parent=parent,
        billable=bool(flags & store.BILLABLE),
        manifestation=bool(flags & store.MANIFESTATION),
        valid_from=_day(valid_from),
        valid_to=_day(valid_to),
        properties=orjson.loads(properties) if properties else None,
        children=children.split("\n") if children else (),
    )


class ConceptTable(Mapping[str, Concept]):
    """``CodeSystemVersion.concepts`` on disk, in the release's order."""

    def __init__(self, table: TableFile) -> None:
        self._t = table
        self._hot: Lru[str, tuple[Concept, dict[str, list[str]]] | None] = Lru(HOT_CODES)

    def _load(self, code: str) -> tuple[Concept, dict[str, list[str]]] | None:
        row = self._t.one(f"SELECT {_CONCEPT_COLUMNS}, notes FROM concept WHERE code = ?", (code,))
        if row is None:
            return None
        return _concept(row), (orjson.loads(row[8]) if row[8] else {})

    def entry(self, code: str) -> tuple[Concept, dict[str, list[str]]] | None:
        """The concept and the notes written at it (cached)."""
        return self._hot.get(code, self._load)

    def get(self, code: str, default: Any = None) -> Any:
        found = self._hot.get(code, self._load)
        return default if found is None else found[0]

    def __getitem__(self, code: str) -> Concept:
        found = self._hot.get(code, self._load)
        if found is None:
            raise KeyError(code)
        return found[0]

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and self._hot.get(code, self._load) is not None

    def __len__(self) -> int:
        return int(self._t.meta["count"])

    def __iter__(self) -> Iterator[str]:
        sql = "SELECT code, seq FROM concept WHERE seq > ? ORDER BY seq LIMIT ?"
        return (row[0] for row in self._t.chunks(sql, -1))

    def _rows(self) -> Iterator[Any]:
        sql = f"SELECT {_CONCEPT_COLUMNS}, seq FROM concept WHERE seq > ? ORDER BY seq LIMIT ?"
        return self._t.chunks(sql, -1)

    def values(self) -> Iterator[Concept]:  # type: ignore[override]
        """Every concept, streamed (not cached: a full walk would evict the hot codes)."""
        return (_concept(row) for row in self._rows())

    def items(self) -> Iterator[tuple[str, Concept]]:  # type: ignore[override]
        return ((row[0], _concept(row)) for row in self._rows())

    def matching(self, words: list[str]) -> set[str]:
        """Codes whose lower-cased "code display" contains every word (``$expand``'s
        filter), found by one scan inside SQLite."""
        where = " AND ".join("instr(lower(code || ' ' || display), ?) > 0" for _ in words)
        rows = self._t.all(f"SELECT code FROM concept WHERE {where}", tuple(words))
        return {row[0] for row in rows}


class NotesTable(Mapping[str, dict[str, list[str]]]):
    """``CodeSystemVersion.notes`` on disk: {code: {kind: [text, ...]}}, codes with notes."""

    def __init__(self, table: TableFile, concepts: ConceptTable) -> None:
        self._t = table
        self._concepts = concepts

    def _find(self, code: str) -> dict[str, list[str]] | None:
        found = self._concepts.entry(code)
        if found is not None:
            return found[1] or None
        row = self._t.one("SELECT notes FROM orphan_note WHERE code = ?", (code,))
        return orjson.loads(row[0]) if row and row[0] else None

    def get(self, code: str, default: Any = None) -> Any:
        found = self._find(code)
        return default if found is None else found

    def __getitem__(self, code: str) -> dict[str, list[str]]:
        found = self._find(code)
        if found is None:
            raise KeyError(code)
        return found

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and self._find(code) is not None

    def __len__(self) -> int:
        row = self._t.one("SELECT count(*) FROM orphan_note WHERE notes IS NOT NULL")
        return int(self._t.meta["notes"]) + int(row[0])

    def __iter__(self) -> Iterator[str]:
        sql = (
            "SELECT code, seq FROM concept WHERE seq > ? AND notes IS NOT NULL ORDER BY seq LIMIT ?"
        )
        yield from (row[0] for row in self._t.chunks(sql, -1))
        yield from (row[0] for row in self._t.all("SELECT code FROM orphan_note"))


def codesystem(meta: Meta, table: TableFile) -> CodeSystemVersion:
    concepts = ConceptTable(table)
    return CodeSystemVersion(
        meta=meta,
        concepts=concepts,
        notes=NotesTable(table, concepts),
        content=str(table.meta.get("content", "complete")),
    )


# ------------------------------------------------------------------ concept maps
def _target(row: Any) -> MapTarget:
    return MapTarget(*row)


class MapEntries(Mapping[str, tuple[MapTarget, ...]]):
    """``ConceptMapVersion.entries`` on disk: {source code: targets in map order}."""

    _SELECT = (
        "SELECT code, display, equivalence, map_group, map_priority, rule, sex, age_min,"
        " age_max, advice FROM target WHERE source = ? ORDER BY seq"
    )

    def __init__(self, table: TableFile) -> None:
        self._t = table
        self._hot: Lru[str, tuple[MapTarget, ...]] = Lru(HOT_CODES)

    def _load(self, source: str) -> tuple[MapTarget, ...]:
        return tuple(_target(row) for row in self._t.all(self._SELECT, (source,)))

    def get(self, source: str, default: Any = None) -> Any:
        return self._hot.get(source, self._load) or default

    def __getitem__(self, source: str) -> tuple[MapTarget, ...]:
        found = self._hot.get(source, self._load)
        if not found:
            raise KeyError(source)
        return found

    def __contains__(self, source: object) -> bool:
        return isinstance(source, str) and bool(self._hot.get(source, self._load))

    def __len__(self) -> int:
        return int(self._t.meta["sources"])

    def __iter__(self) -> Iterator[str]:
        rows = self._t.all(
            "SELECT source, min(seq) AS first FROM target GROUP BY source ORDER BY first"
        )
        return (row[0] for row in rows)


class SourceDisplays(Mapping[str, str]):
    def __init__(self, table: TableFile) -> None:
        self._t = table

    def __getitem__(self, code: str) -> str:
        row = self._t.one("SELECT display FROM source_display WHERE code = ?", (code,))
        if row is None:
            raise KeyError(code)
        return str(row[0])

    def __len__(self) -> int:
        return int(self._t.meta["source_displays"])

    def __iter__(self) -> Iterator[str]:
        return (row[0] for row in self._t.all("SELECT code FROM source_display"))


def conceptmap(meta: Meta, table: TableFile) -> ConceptMapVersion:
    return ConceptMapVersion(
        meta=meta,
        source_system=str(table.meta["source_system"]),
        target_system=str(table.meta["target_system"]),
        entries=MapEntries(table),
        source_displays=SourceDisplays(table),
    )


# ------------------------------------------------------------------ billing tables
def _decoder(cls: type, dates: tuple[int, ...]) -> Callable[[list[Any]], Any]:
    def decode(values: list[Any]) -> Any:
        for i in dates:
            if values[i]:
                values[i] = date.fromisoformat(values[i])
        return cls(*values)

    return decode


DECODERS: dict[str, Callable[[list[Any]], Any]] = {
    "ncci-ptp": _decoder(PtpEdit, (2, 3)),
    "mue": _decoder(Mue, ()),
    "mpfs-rvu": _decoder(Rvu, ()),
    "aoc": _decoder(AddOn, (3, 4, 5)),
    "mpfs-gpci": _decoder(Gpci, (7,)),
    "mpfs-locality": _decoder(Locality, ()),
}


class RowTable(Sequence[T]):
    """A billing table on disk: the rows in file order, and ``find`` by key."""

    def __init__(self, kind: str, table: TableFile) -> None:
        self.kind = kind
        self._t = table
        self._decode = DECODERS[kind]
        self._hot: Lru[tuple[str, str], list[T]] = Lru(HOT_CODES)

    def _load(self, key: tuple[str, str]) -> list[T]:
        rows = self._t.all("SELECT body FROM row WHERE key1 = ? AND key2 = ? ORDER BY seq", key)
        return [self._decode(orjson.loads(row[0])) for row in rows]

    def find(self, key1: str, key2: str = "") -> list[T]:
        """The rows with these keys (e.g. an RVU code and modifier), cached."""
        return self._hot.get((key1, key2), self._load)

    def __len__(self) -> int:
        return int(self._t.meta["count"])

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[T]: ...

    def __getitem__(self, index: int | slice) -> T | Sequence[T]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        row = self._t.one("SELECT body FROM row WHERE seq = ?", (index + 1,))
        if row is None:
            raise IndexError(index)
        decoded: T = self._decode(orjson.loads(row[0]))
        return decoded

    def __iter__(self) -> Iterator[T]:
        sql = "SELECT body, seq FROM row WHERE seq > ? ORDER BY seq LIMIT ?"
        return (self._decode(orjson.loads(row[0])) for row in self._t.chunks(sql, 0))


def open_table(kind: str, meta: Meta, path: Path) -> Any:
    """The read-only view of the cache file ``path`` for a table of ``kind``."""
    table = TableFile(path)
    if kind == "codesystem":
        return codesystem(meta, table)
    if kind == "conceptmap":
        return conceptmap(meta, table)
    return RowTable[Any](kind, table)
