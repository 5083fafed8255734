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
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

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
from server.storage.sqlite_bodies import BodyCodec, BodyFormatError
from server.storage.sqlite_index import IndexWriter
from server.storage.sqlite_schema import StoreLayoutError, prepare
from server.storage.sqlite_search import chunks, page_rows, render_include
from server.storage.testhooks import pause_before_commit

T = TypeVar("T")

Row = tuple[str, str, int, str, int, bytes | None]
VERSION_COLUMNS = "type, id, version, last_updated, deleted, body"
# The WAL is truncated back to this after a checkpoint: a 35k-entry bundle is one
# transaction, and without a limit its WAL (hundreds of MB) would stay on disk.
WAL_LIMIT = 64 * 1024 * 1024


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
        self._codec = BodyCodec()
        self._index = IndexWriter()
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
        conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
        return conn

    def _version(self, c: sqlite3.Connection, row: Row) -> StoredVersion:
        rtype, rid, version, last_updated, deleted, blob = row
        try:
            body = self._codec.decode(c, blob)
        except (BodyFormatError, zlib.error) as exc:
            raise StoreUnavailable(f"{rtype}/{rid}/_history/{version}: {exc}") from exc
        return StoredVersion(rtype, rid, version, last_updated, bool(deleted), body)

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
            try:
                prepare(self._writer_conn)
            except StoreLayoutError as exc:
                raise StoreUnavailable(f"cannot use {self.path}: {exc}") from exc
            self._codec.load(self._writer_conn)

        await self._run(self._writer_pool, init)
        loop_conn = self._connect()
        loop_conn.execute("PRAGMA busy_timeout=0")
        self._loop_conn = loop_conn

    async def checkpoint(self, wait_ms: int = 30000) -> None:
        """Fold the WAL into the database file and truncate it (after big loads, on
        close). Waits up to ``wait_ms`` for readers of other processes to let go."""

        def run(c: sqlite3.Connection) -> None:
            c.execute(f"PRAGMA busy_timeout={wait_ms}")
            try:
                c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                c.execute("PRAGMA busy_timeout=30000")

        await self._write(run)

    async def close(self) -> None:
        if self._reader_pool is not None:
            self._reader_pool.shutdown(wait=True)
        with self._conns_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
        if self._writer_pool is not None and self._writer_conn is not None:
            try:  # on shutdown leave no WAL behind, unless another process is reading
                await self.checkpoint(wait_ms=1000)
            except StoreUnavailable:
                pass
        if self._writer_pool is not None:
            self._writer_pool.shutdown(wait=True)
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
                f"SELECT {VERSION_COLUMNS} FROM resource_versions"
                " WHERE type = ? AND id = ? ORDER BY version DESC LIMIT 1",
                (resource_type, resource_id),
            ).fetchone()
            return self._version(c, row) if row else None

        return await self._point_read(q)

    async def vread(
        self, resource_type: str, resource_id: str, version: int
    ) -> StoredVersion | None:
        def q(c: sqlite3.Connection) -> StoredVersion | None:
            row = c.execute(
                f"SELECT {VERSION_COLUMNS} FROM resource_versions"
                " WHERE type = ? AND id = ? AND version = ?",
                (resource_type, resource_id, version),
            ).fetchone()
            return self._version(c, row) if row else None

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
            f"SELECT {VERSION_COLUMNS}, seq FROM resource_versions"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY last_updated DESC, seq DESC LIMIT ?"
        )
        args.append(query.count + 1)

        def q(c: sqlite3.Connection) -> HistoryPage:
            rows = c.execute(text, args).fetchall()
            more = len(rows) > query.count
            rows = rows[: query.count]
            versions = [self._version(c, row[:6]) for row in rows]
            cursor = _encode_cursor(rows[-1][3], rows[-1][6]) if more and rows else None
            return HistoryPage(versions, cursor)

        return await self._read(q)

    async def search(self, query: SearchQuery) -> SearchPage:
        def q(c: sqlite3.Connection) -> SearchPage:
            c.execute("BEGIN")  # one snapshot for the driver's ids, the page and its total
            try:
                rows, count_sql = page_rows(c, query)
                more = len(rows) > query.count
                rows = rows[: query.count]
                if query.before is not None:
                    rows.reverse()
                positions = [tuple(row[:-1]) for row in rows]
                versions = self._by_seq(c, [row[-1] for row in rows])
                total = None
                if count_sql is not None:
                    total = c.execute(count_sql[0], count_sql[1]).fetchone()[0]
            finally:
                c.execute("COMMIT")
            return SearchPage(versions, positions, more, total)

        return await self._read(q)

    async def include(
        self, spec: IncludeSpec, resources: Sequence[tuple[str, str]], limit: int
    ) -> list[StoredVersion]:
        def q(c: sqlite3.Connection) -> list[StoredVersion]:
            found: dict[int, None] = {}  # row ids of current versions, in order
            by_type: dict[str, list[str]] = {}
            for rtype, rid in resources:
                by_type.setdefault(rtype, []).append(rid)
            for rtype, ids in by_type.items():
                for chunk in chunks(ids, 500):
                    rendered = render_include(spec, rtype, chunk)
                    if rendered is None:
                        continue
                    sql, args = rendered
                    for row in c.execute(sql + " LIMIT ?", [*args, limit]):
                        found[row[0]] = None
            return self._by_seq(c, list(found)[:limit])

        return await self._read(q)

    def _by_seq(self, c: sqlite3.Connection, seqs: list[int]) -> list[StoredVersion]:
        """The versions ``seqs`` (current, non-deleted ones only), in that order."""
        found: dict[int, StoredVersion] = {}
        for chunk in chunks(seqs, 500):
            rows = c.execute(
                f"SELECT seq, {VERSION_COLUMNS} FROM resource_versions"
                f" WHERE seq IN ({','.join('?' * len(chunk))}) AND is_current = 1 AND deleted = 0",
                chunk,
            ).fetchall()
            for row in rows:
                found[row[0]] = self._version(c, row[1:])
        return [found[s] for s in seqs if s in found]

    async def reindex(self, entries: Sequence[tuple[str, str, SearchIndex]]) -> None:
        def tx(c: sqlite3.Connection) -> None:
            c.execute("BEGIN IMMEDIATE")
            try:
                for rtype, rid, index in entries:
                    row = c.execute(
                        "SELECT seq FROM resource_versions WHERE type = ? AND id = ?"
                        " AND is_current = 1 AND deleted = 0",
                        (rtype, rid),
                    ).fetchone()
                    if row is None:
                        continue
                    self._index.clear(c, [row[0]])
                    self._index.add(c, rtype, row[0], index)
                self._index.flush(c)
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                self._index.rollback()
                raise
            self._index.committed()

        await self._write(tx)

    # -- writes --------------------------------------------------------------------

    async def commit(self, writes: Sequence[Write]) -> None:
        if not writes:
            return

        def tx(c: sqlite3.Connection) -> None:
            c.execute("BEGIN IMMEDIATE")
            try:
                self._codec.prepare(
                    c, [(w.resource_type, w.body) for w in writes if w.body is not None]
                )
                for w in writes:
                    row = c.execute(
                        "SELECT version, seq FROM resource_versions WHERE type = ? AND id = ?"
                        " ORDER BY version DESC LIMIT 1",
                        (w.resource_type, w.id),
                    ).fetchone()
                    actual = row[0] if row else 0
                    if actual != w.expected_version:
                        raise VersionConflict(w.resource_type, w.id, w.expected_version, actual)
                    # A resource that never existed has no current version and no index
                    # rows to clear: skip those statements (most writes are creates).
                    if row is not None:
                        c.execute(
                            "UPDATE resource_versions SET is_current = 0 WHERE seq = ?", (row[1],)
                        )
                        self._index.clear(c, [row[1]])
                    blob = None if w.body is None else self._codec.encode(w.resource_type, w.body)
                    cur = c.execute(
                        "INSERT INTO resource_versions"
                        " (type, id, version, last_updated, deleted, is_current, body)"
                        " VALUES (?, ?, ?, ?, ?, 1, ?)",
                        (w.resource_type, w.id, w.version, w.last_updated, int(w.deleted), blob),
                    )
                    if w.index is not None and not w.deleted:
                        assert cur.lastrowid is not None
                        self._index.add(c, w.resource_type, cur.lastrowid, w.index)
                self._index.flush(c)
                pause_before_commit()  # crash-recovery tests only; no-op otherwise
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                self._codec.rollback()
                self._index.rollback()
                raise
            self._codec.committed()
            self._index.committed()

        await self._write(tx)


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
