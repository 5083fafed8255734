"""The embedded store: one SQLite file in WAL mode, one writer thread, several readers.

SQLite allows one writer at a time; instead of fighting over its lock, every write runs
on a single dedicated thread (so writes queue in Python, not in ``busy_timeout``), while
reads run on a small pool of threads, each with its own connection, concurrently with the
writer thanks to WAL. Each ``commit`` is one ``BEGIN IMMEDIATE`` transaction: a crash at
any point leaves either all of its versions or none.

A point read by primary key (``read``, ``vread``) costs tens of microseconds, less than
the hop to a pool thread and back; it runs on the event loop itself, on a connection of
its own that never waits for a lock (``busy_timeout`` 0): if SQLite answers "busy" (WAL
recovery, a checkpoint that resets the log) the read is simply retried on the pool.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from server.search import sql_render
from server.search.expr import And, Expr
from server.spec.resources import resource_types
from server.storage.port import (
    BackendInfo,
    HistoryPage,
    HistoryQuery,
    IncludeSpec,
    SearchIndex,
    SearchPage,
    SearchQuery,
    StoredVersion,
    StoreUnavailable,
    VersionConflict,
    Write,
)
from server.storage.testhooks import pause_before_commit

T = TypeVar("T")

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS resource_versions (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    type         TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    last_updated TEXT    NOT NULL,
    deleted      INTEGER NOT NULL,
    is_current   INTEGER NOT NULL,
    body         BLOB,
    UNIQUE (type, id, version)
);
CREATE INDEX IF NOT EXISTS resource_versions_history
    ON resource_versions (last_updated, seq);
CREATE INDEX IF NOT EXISTS resource_versions_type_history
    ON resource_versions (type, last_updated, seq);
CREATE INDEX IF NOT EXISTS resource_versions_current
    ON resource_versions (type, id) WHERE is_current = 1 AND deleted = 0;
-- The identifier-only index of release 0.1.0 (conditional matching now searches
-- the full index below); dropped when a database from such a release is opened.
DROP TABLE IF EXISTS token_index;
"""
    + sql_render.SCHEMA
)


def _row_to_version(row: tuple[str, str, int, str, int, bytes | None]) -> StoredVersion:
    rtype, rid, version, last_updated, deleted, body = row
    return StoredVersion(rtype, rid, version, last_updated, bool(deleted), body)


class SQLiteStore:
    """``Store`` on an SQLite file. ``path`` may be ``:memory:`` only for one-connection use."""

    def __init__(self, path: str | Path, readers: int = 4) -> None:
        self.path = Path(path)
        self.info = BackendInfo(kind="sqlite", location=str(self.path))
        self._readers = readers
        self._writer_pool: ThreadPoolExecutor | None = None
        self._reader_pool: ThreadPoolExecutor | None = None
        self._writer_conn: sqlite3.Connection | None = None
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        # The connection of point reads on the event loop; the lock keeps two loops (in
        # two threads) from sharing it at once: the loser reads on the pool instead.
        self._loop_conn: sqlite3.Connection | None = None
        self._loop_lock = threading.Lock()

    # -- connections ---------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._conns_lock:
                self._reader_conns.append(conn)
        return conn

    async def _run(self, pool: ThreadPoolExecutor | None, fn: Callable[[], T]) -> T:
        if pool is None:
            raise StoreUnavailable("the SQLite store is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite error: {exc}") from exc

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._run(self._reader_pool, lambda: fn(self._reader()))

    async def _point_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A read of a few rows by key: on the calling thread, else on the pool."""
        conn = self._loop_conn
        if conn is not None and self._loop_lock.acquire(blocking=False):
            try:
                return fn(conn)
            except sqlite3.OperationalError:
                pass  # busy or locked: the pool's connections wait for it
            finally:
                self._loop_lock.release()
        return await self._read(fn)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            assert self._writer_conn is not None
            return fn(self._writer_conn)

        return await self._run(self._writer_pool, run)

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create {self.path.parent}: {exc}") from exc
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._reader_pool = ThreadPoolExecutor(self._readers, thread_name_prefix="sqlite-reader")

        def init() -> None:
            self._writer_conn = self._connect()
            self._writer_conn.executescript(SCHEMA)

        await self._run(self._writer_pool, init)
        loop_conn = self._connect()
        loop_conn.execute("PRAGMA busy_timeout=0")
        self._loop_conn = loop_conn

    async def close(self) -> None:
        for pool in (self._reader_pool, self._writer_pool):
            if pool is not None:
                pool.shutdown(wait=True)
        with self._conns_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
        if self._writer_conn is not None:
            self._writer_conn.close()
        self._writer_conn = None
        with self._loop_lock:
            if self._loop_conn is not None:
                self._loop_conn.close()
            self._loop_conn = None
        self._reader_pool = self._writer_pool = None

    async def ping(self) -> None:
        await self._read(lambda c: c.execute("SELECT 1").fetchone())

    # -- reads ---------------------------------------------------------------------

    async def read(self, resource_type: str, resource_id: str) -> StoredVersion | None:
        def q(c: sqlite3.Connection) -> StoredVersion | None:
            row = c.execute(
                "SELECT type, id, version, last_updated, deleted, body FROM resource_versions"
                " WHERE type = ? AND id = ? ORDER BY version DESC LIMIT 1",
                (resource_type, resource_id),
            ).fetchone()
            return _row_to_version(row) if row else None

        return await self._point_read(q)

    async def vread(
        self, resource_type: str, resource_id: str, version: int
    ) -> StoredVersion | None:
        def q(c: sqlite3.Connection) -> StoredVersion | None:
            row = c.execute(
                "SELECT type, id, version, last_updated, deleted, body FROM resource_versions"
                " WHERE type = ? AND id = ? AND version = ?",
                (resource_type, resource_id, version),
            ).fetchone()
            return _row_to_version(row) if row else None

        return await self._point_read(q)

    async def history(self, query: HistoryQuery) -> HistoryPage:
        where: list[str] = []
        args: list[object] = []
        if query.resource_type is not None:
            where.append("type = ?")
            args.append(query.resource_type)
        if query.resource_id is not None:
            where.append("id = ?")
            args.append(query.resource_id)
        if query.since is not None:
            where.append("last_updated >= ?")
            args.append(query.since)
        if query.cursor is not None:
            last_updated, seq = _decode_cursor(query.cursor)
            where.append("(last_updated < ? OR (last_updated = ? AND seq < ?))")
            args.extend([last_updated, last_updated, seq])
        text = (
            "SELECT type, id, version, last_updated, deleted, body, seq FROM resource_versions"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY last_updated DESC, seq DESC LIMIT ?"
        )
        args.append(query.count + 1)

        def q(c: sqlite3.Connection) -> HistoryPage:
            rows = c.execute(text, args).fetchall()
            more = len(rows) > query.count
            rows = rows[: query.count]
            versions = [_row_to_version(row[:6]) for row in rows]
            cursor = _encode_cursor(rows[-1][3], rows[-1][6]) if more and rows else None
            return HistoryPage(versions, cursor)

        return await self._read(q)

    async def search(self, query: SearchQuery) -> SearchPage:
        text, args, keys, count_sql = _render_search(query)

        def q(c: sqlite3.Connection) -> SearchPage:
            rows = c.execute(text, args).fetchall()
            more = len(rows) > query.count
            rows = rows[: query.count]
            if query.before is not None:
                rows.reverse()
            positions = [tuple(row) for row in rows]
            versions = _current_versions(c, [(row[-2], row[-1]) for row in rows])
            total = None
            if count_sql is not None:
                total = c.execute(count_sql[0], count_sql[1]).fetchone()[0]
            return SearchPage(versions, positions, more, total)

        return await self._read(q)

    async def include(
        self, spec: IncludeSpec, resources: Sequence[tuple[str, str]], limit: int
    ) -> list[StoredVersion]:
        def q(c: sqlite3.Connection) -> list[StoredVersion]:
            found: dict[tuple[str, str], None] = {}
            by_type: dict[str, list[str]] = {}
            for rtype, rid in resources:
                by_type.setdefault(rtype, []).append(rid)
            for rtype, ids in by_type.items():
                for chunk in _chunks(ids, 500):
                    marks = ",".join("?" * len(chunk))
                    if spec.reverse:
                        sql = (
                            "SELECT type, id FROM sp_ref INDEXED BY sp_ref_target"
                            f" WHERE target_type = ? AND target_id IN ({marks})"
                        )
                        args: list[object] = [rtype, *chunk]
                        if spec.source_type != "*":  # _revinclude=*: any source type
                            sql += " AND type = ?"
                            args.append(spec.source_type)
                        if spec.param is not None:
                            sql += " AND param = ?"
                            args.append(spec.param)
                        if spec.target_type is not None and spec.target_type != rtype:
                            continue
                    else:
                        if spec.source_type not in ("*", rtype):
                            continue
                        sql = (
                            "SELECT target_type, target_id FROM sp_ref INDEXED BY sp_ref_owner"
                            " WHERE type = ?"
                            f" AND id IN ({marks}) AND target_id IS NOT NULL"
                        )
                        args = [rtype, *chunk]
                        if spec.param is not None:
                            sql += " AND param = ?"
                            args.append(spec.param)
                        if spec.target_type is not None:
                            sql += " AND target_type = ?"
                            args.append(spec.target_type)
                    for row in c.execute(sql + " LIMIT ?", [*args, limit]):
                        found[(row[0], row[1])] = None
            return _current_versions(c, list(found)[:limit])

        return await self._read(q)

    async def reindex(self, entries: Sequence[tuple[str, str, SearchIndex]]) -> None:
        def tx(c: sqlite3.Connection) -> None:
            c.execute("BEGIN IMMEDIATE")
            try:
                for rtype, rid, index in entries:
                    _replace_index(c, rtype, rid, index)
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

        await self._write(tx)

    # -- writes --------------------------------------------------------------------

    async def commit(self, writes: Sequence[Write]) -> None:
        if not writes:
            return

        def tx(c: sqlite3.Connection) -> None:
            c.execute("BEGIN IMMEDIATE")
            try:
                for w in writes:
                    row = c.execute(
                        "SELECT version FROM resource_versions WHERE type = ? AND id = ?"
                        " ORDER BY version DESC LIMIT 1",
                        (w.resource_type, w.id),
                    ).fetchone()
                    actual = row[0] if row else 0
                    if actual != w.expected_version:
                        raise VersionConflict(w.resource_type, w.id, w.expected_version, actual)
                    # A resource that never existed has no current version and no index
                    # rows to clear: skip those statements (most writes are creates).
                    fresh = actual == 0
                    if not fresh:
                        c.execute(
                            "UPDATE resource_versions SET is_current = 0"
                            " WHERE type = ? AND id = ? AND is_current = 1",
                            (w.resource_type, w.id),
                        )
                    c.execute(
                        "INSERT INTO resource_versions"
                        " (type, id, version, last_updated, deleted, is_current, body)"
                        " VALUES (?, ?, ?, ?, ?, 1, ?)",
                        (w.resource_type, w.id, w.version, w.last_updated, int(w.deleted), w.body),
                    )
                    _replace_index(c, w.resource_type, w.id, w.index, fresh)
                pause_before_commit()  # crash-recovery tests only; no-op otherwise
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

        await self._write(tx)


_INDEX_INSERTS = {
    "tokens": "INSERT INTO sp_token (type, id, param, system, code) VALUES (?, ?, ?, ?, ?)",
    "strings": "INSERT INTO sp_string (type, id, param, norm, exact) VALUES (?, ?, ?, ?, ?)",
    "references": "INSERT INTO sp_ref (type, id, param, target_type, target_id, url)"
    " VALUES (?, ?, ?, ?, ?, ?)",
    "dates": "INSERT INTO sp_date (type, id, param, lo, hi) VALUES (?, ?, ?, ?, ?)",
    "numbers": "INSERT INTO sp_number (type, id, param, value) VALUES (?, ?, ?, ?)",
    "quantities": "INSERT INTO sp_quantity (type, id, param, system, code, value)"
    " VALUES (?, ?, ?, ?, ?, ?)",
    "uris": "INSERT INTO sp_uri (type, id, param, uri) VALUES (?, ?, ?, ?)",
}
_COMPOSITE_INSERT = (
    "INSERT INTO sp_composite (type, id, param, s1, c1, lo1, hi1, s2, c2, lo2, hi2,"
    " s3, c3, lo3, hi3) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _replace_index(
    c: sqlite3.Connection, rtype: str, rid: str, index: SearchIndex | None, fresh: bool = False
) -> None:
    """Drop the index rows of the previous version (if any); add this version's."""
    if not fresh:
        for table in sql_render.TABLES.values():
            c.execute(f"DELETE FROM {table} WHERE type = ? AND id = ?", (rtype, rid))
    if index is None:
        return
    for name, sql in _INDEX_INSERTS.items():
        rows = getattr(index, name)
        if rows:
            c.executemany(sql, [(rtype, rid, *row) for row in rows])
    if index.composites:
        rows = []
        for param, parts in index.composites:
            flat: list[object] = []
            for part in parts[: sql_render.COMPOSITE_WIDTH]:
                flat.extend(part)
            flat.extend([None] * (4 * sql_render.COMPOSITE_WIDTH - len(flat)))
            rows.append((rtype, rid, param, *flat))
        c.executemany(_COMPOSITE_INSERT, rows)


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _current_versions(c: sqlite3.Connection, keys: list[tuple[str, str]]) -> list[StoredVersion]:
    """The current versions of ``keys`` (type, id), in that order, skipping deleted ones."""
    if not keys:
        return []
    found: dict[tuple[str, str], StoredVersion] = {}
    by_type: dict[str, list[str]] = {}
    for rtype, rid in keys:
        by_type.setdefault(rtype, []).append(rid)
    for rtype, ids in by_type.items():
        for chunk in _chunks(ids, 500):
            rows = c.execute(
                "SELECT type, id, version, last_updated, deleted, body FROM resource_versions"
                f" WHERE type = ? AND id IN ({','.join('?' * len(chunk))})"
                " AND is_current = 1 AND deleted = 0",
                [rtype, *chunk],
            ).fetchall()
            for row in rows:
                found[(row[0], row[1])] = _row_to_version(row)
    return [found[k] for k in keys if k in found]


def _render_search(
    query: SearchQuery,
) -> tuple[str, list[object], list[tuple[str, bool]], tuple[str, list[object]] | None]:
    """SQL of one page (``SELECT k..., type, id``) and of the total count if asked."""
    r = sql_render.Renderer()
    where: list[str] = [f"r.{sql_render.CURRENT}"]
    args: list[object] = []
    if len(query.types) == 1:
        where.append("r.type = ?")
        args.append(query.types[0])
    elif query.types:
        where.append(f"r.type IN ({','.join('?' * len(query.types))})")
        args.extend(query.types)
    else:  # every type means every FHIR type: internal records never match a search
        every = sorted(resource_types())
        where.append(f"r.type IN ({','.join('?' * len(every))})")
        args.extend(every)
    if query.where is not None:
        terms: list[Expr] = (
            list(query.where.exprs) if isinstance(query.where, And) else [query.where]
        )
        driver = None
        if len(query.types) == 1:
            driver, terms = sql_render.split_driver(terms)
        if driver is not None:
            sub = r.ids(driver, query.types[0])
            if sub is None:
                terms.append(driver)
            else:
                where.append(f"r.id IN ({sub[0]})")
                args.extend(sub[1])
        for term in terms:
            sql, a = r.cond(term, "r.type", "r.id")
            where.append(sql)
            args.extend(a)
    keys = [(r.sort_expr(k), k.descending) for k in query.sort]
    keys += [("r.type", False), ("r.id", False)]
    names = [f"k{i}" for i in range(len(keys))]
    select = ", ".join(f"{expr} AS {name}" for (expr, _), name in zip(keys, names, strict=True))
    inner = f"SELECT {select} FROM resource_versions r WHERE {' AND '.join(where)}"
    count_sql = (
        (f"SELECT count(*) FROM resource_versions r WHERE {' AND '.join(where)}", list(args))
        if query.total
        else None
    )
    outer_keys = [(name, desc) for name, (_, desc) in zip(names, keys, strict=True)]
    backwards = query.before is not None
    position = query.before if backwards else query.after
    text = f"SELECT * FROM ({inner})"
    outer_args = list(args)
    if position is not None:
        cond, cargs = sql_render.keyset(outer_keys, tuple(position), backwards)
        text += f" WHERE {cond}"
        outer_args.extend(cargs)
    order = ", ".join(
        f"{name} {'DESC' if desc != backwards else 'ASC'}" for name, desc in outer_keys
    )
    text += f" ORDER BY {order} LIMIT ?"
    outer_args.append(query.count + 1)
    return text, outer_args, outer_keys, count_sql


def _encode_cursor(last_updated: str, seq: int) -> str:
    raw = json.dumps([last_updated, seq]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        last_updated, seq = json.loads(base64.urlsafe_b64decode(padded))
        return str(last_updated), int(seq)
    except (ValueError, TypeError) as exc:
        raise ValueError("malformed paging cursor") from exc
