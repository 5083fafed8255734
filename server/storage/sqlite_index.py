"""Writing a version's search index rows in the seq-keyed, interned layout.

Runs on the writer thread only. Token and string values become ``term`` ids through
an in-memory cache of the terms tables (terms are never deleted, so a cached id stays
valid; ids minted by a transaction that rolls back are forgotten with ``rollback``).

Rows are gathered across the writes of a transaction and inserted with one
``executemany`` per table (``flush``): a Synthea resource has ~30 rows in 5-6 tables,
and a statement per table per resource cost as much as the rows themselves. The
store calls ``flush`` before its COMMIT; ``clear`` flushes first (an update of a
version written earlier in the same transaction), and at most ``PENDING_LIMIT`` rows
wait, so a 40,000-entry bundle never holds all its rows twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from server.search import sql_render
from server.storage.port import SearchIndex

CACHE_LIMIT = 500_000  # term ids kept in memory per kind (a few tens of MB at most)
PENDING_LIMIT = 20_000  # rows gathered before they are inserted (a few MB)
_TOKEN_INSERT = "INSERT OR IGNORE INTO sp_token (term, seq) VALUES (?, ?)"
_STRING_INSERT = "INSERT OR IGNORE INTO sp_string (term, seq) VALUES (?, ?)"

_INSERTS = {
    "references": "INSERT INTO sp_ref (type, seq, param, target_type, target_id, url)"
    " VALUES (?, ?, ?, ?, ?, ?)",
    "dates": "INSERT INTO sp_date (type, seq, param, lo, hi) VALUES (?, ?, ?, ?, ?)",
    "numbers": "INSERT INTO sp_number (type, seq, param, value) VALUES (?, ?, ?, ?)",
    "quantities": "INSERT INTO sp_quantity (type, seq, param, system, code, value)"
    " VALUES (?, ?, ?, ?, ?, ?)",
    "uris": "INSERT INTO sp_uri (type, seq, param, uri) VALUES (?, ?, ?, ?)",
}
_COMPOSITE_INSERT = (
    "INSERT INTO sp_composite (type, seq, param, s1, c1, lo1, hi1, s2, c2, lo2, hi2,"
    " s3, c3, lo3, hi3) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_OWNED = [*sql_render.TABLES.values()]

TokenKey = tuple[str, str, str | None, str]  # type, param, system, code
StringKey = tuple[str, str, str, str]  # type, param, norm, exact


class IndexWriter:
    def __init__(self) -> None:
        self._tokens: dict[TokenKey, int] = {}
        self._strings: dict[StringKey, int] = {}
        self._new_tokens: list[TokenKey] = []
        self._new_strings: list[StringKey] = []
        # Rows added and not yet inserted, per INSERT statement.
        self._pending: dict[str, list[tuple[object, ...]]] = {}
        self._pending_rows = 0

    @property
    def pending(self) -> int:
        """Rows added since the last ``flush`` (0 after it)."""
        return self._pending_rows

    def flush(self, c: sqlite3.Connection) -> None:
        """Insert every pending row (the store calls it before COMMIT)."""
        for sql, rows in self._pending.items():
            if rows:
                c.executemany(sql, rows)
        self._pending.clear()
        self._pending_rows = 0

    def committed(self) -> None:
        if self._pending_rows:
            # A COMMIT without ``flush`` would have lost these rows: a defect of the
            # caller, never to be hidden (the rows are dropped with the error).
            self._pending.clear()
            self._pending_rows = 0
            raise RuntimeError("index rows were added after the last flush before COMMIT")
        self._new_tokens.clear()
        self._new_strings.clear()
        for cache in (self._tokens, self._strings):
            if len(cache) > CACHE_LIMIT:
                cache.clear()

    def rollback(self) -> None:
        self._pending.clear()
        self._pending_rows = 0
        for tk in self._new_tokens:
            self._tokens.pop(tk, None)
        for sk in self._new_strings:
            self._strings.pop(sk, None)
        self.committed()

    def _token_term(self, c: sqlite3.Connection, k: TokenKey) -> int:
        term = self._tokens.get(k)
        if term is not None:
            return term
        rtype, param, system, code = k
        row = c.execute(
            "SELECT term FROM sp_token_terms WHERE param = ? AND code = ? AND system IS ?"
            " AND type = ?",
            (param, code, system, rtype),
        ).fetchone()
        if row is None:
            cur = c.execute(
                "INSERT INTO sp_token_terms (type, param, system, code) VALUES (?, ?, ?, ?)", k
            )
            assert cur.lastrowid is not None
            term = cur.lastrowid
            self._new_tokens.append(k)
        else:
            term = row[0]
        self._tokens[k] = term
        return term

    def _string_term(self, c: sqlite3.Connection, k: StringKey) -> int:
        term = self._strings.get(k)
        if term is not None:
            return term
        rtype, param, norm, exact = k
        row = c.execute(
            "SELECT term FROM sp_string_terms WHERE param = ? AND norm = ? AND exact = ?"
            " AND type = ?",
            (param, norm, exact, rtype),
        ).fetchone()
        if row is None:
            cur = c.execute(
                "INSERT INTO sp_string_terms (type, param, norm, exact) VALUES (?, ?, ?, ?)", k
            )
            assert cur.lastrowid is not None
            term = cur.lastrowid
            self._new_strings.append(k)
        else:
            term = row[0]
        self._strings[k] = term
        return term

    def clear(self, c: sqlite3.Connection, seqs: Iterable[int]) -> None:
        """Drop the index rows of the versions ``seqs`` (superseded or re-indexed)."""
        if self._pending_rows:
            self.flush(c)  # the version may have been written earlier in this transaction
        for seq in seqs:
            for table in _OWNED:
                c.execute(f"DELETE FROM {table} WHERE seq = ?", (seq,))

    def _queue(self, c: sqlite3.Connection, sql: str, rows: list[tuple[object, ...]]) -> None:
        queued = self._pending.get(sql)
        if queued is None:
            self._pending[sql] = rows
        else:
            queued.extend(rows)
        self._pending_rows += len(rows)
        if self._pending_rows >= PENDING_LIMIT:
            self.flush(c)

    def add(self, c: sqlite3.Connection, rtype: str, seq: int, index: SearchIndex) -> None:
        """Add the index rows of version ``seq`` (a current, non-deleted version); they
        are inserted by ``flush`` (or sooner, past ``PENDING_LIMIT`` rows)."""
        if index.tokens:
            cache = self._tokens
            terms = set()
            for p, s, code in index.tokens:
                k = (rtype, p, s, code)
                term = cache.get(k)
                terms.add(term if term is not None else self._token_term(c, k))
            self._queue(c, _TOKEN_INSERT, [(t, seq) for t in terms])
        if index.strings:
            cache_s = self._strings
            terms = set()
            for p, n, x in index.strings:
                ks = (rtype, p, n, x)
                term = cache_s.get(ks)
                terms.add(term if term is not None else self._string_term(c, ks))
            self._queue(c, _STRING_INSERT, [(t, seq) for t in terms])
        for name, sql in _INSERTS.items():
            rows = getattr(index, name)
            if rows:
                self._queue(c, sql, [(rtype, seq, *row) for row in rows])
        if index.composites:
            out: list[tuple[object, ...]] = []
            for param, parts in index.composites:
                flat: list[object] = []
                for part in parts[: sql_render.COMPOSITE_WIDTH]:
                    flat.extend(part)
                flat.extend([None] * (4 * sql_render.COMPOSITE_WIDTH - len(flat)))
                out.append((rtype, seq, param, *flat))
            self._queue(c, _COMPOSITE_INSERT, out)
