"""The SQLite store's tables, its layout version and the upgrade from older layouts.

``PRAGMA user_version`` records the layout: 0 is every store written before 0.4
(index rows keyed by (type, id) text, bodies as plain JSON); 2 keyed index rows by the
version's ``seq``, interned token and string values and compressed bodies with zlib; 3
is this one (bodies compressed with zstd, see ``sqlite_bodies``). Opening a layout-0
store upgrades it in place, in one transaction, with SQL alone (no re-extraction: the
old rows hold every value); its bodies stay as they were (plain JSON is a valid body
format) and new versions are compressed. Opening a layout-2 store adds two columns to
``body_dictionaries``; its zlib bodies stay readable as they are, new versions are zstd.
Layout 3 exists so that a release that knows only zlib refuses the store instead of
failing on each zstd body. A store with a *newer* layout than this code knows is refused with a
message, never guessed at.
"""

from __future__ import annotations

import logging
import sqlite3

from server.storage.sqlite_bodies import SCHEMA as BODIES_SCHEMA
from server.storage.sqlite_bodies import upgrade as upgrade_bodies

log = logging.getLogger(__name__)

LAYOUT = 3


class StoreLayoutError(RuntimeError):
    """The database was written by a newer Billable (or is not a Billable store)."""


VERSIONS = """
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
-- The identifier-only index of release 0.1.0.
DROP TABLE IF EXISTS token_index;
"""

# Index tables. ``seq`` is the resource_versions row of the current version; every
# table has an owner index ``(seq, ...)`` (replacing rows on update, EXISTS probes,
# sort keys) and value indexes for driving a search. Token and string rows are
# WITHOUT ROWID (term, seq) pairs: the primary key is the value index.
INDEX_TABLES = """
CREATE TABLE IF NOT EXISTS sp_token_terms (
    term INTEGER PRIMARY KEY, type TEXT NOT NULL, param TEXT NOT NULL, system TEXT,
    code TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS sp_token_terms_value
    ON sp_token_terms (param, code, system, type);
CREATE TABLE IF NOT EXISTS sp_token (
    term INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (term, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sp_token_owner ON sp_token (seq);
CREATE TABLE IF NOT EXISTS sp_string_terms (
    term INTEGER PRIMARY KEY, type TEXT NOT NULL, param TEXT NOT NULL, norm TEXT NOT NULL,
    exact TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS sp_string_terms_value
    ON sp_string_terms (param, norm, exact, type);
CREATE TABLE IF NOT EXISTS sp_string (
    term INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (term, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sp_string_owner ON sp_string (seq);
CREATE TABLE IF NOT EXISTS sp_ref (
    type TEXT NOT NULL, seq INTEGER NOT NULL, param TEXT NOT NULL, target_type TEXT,
    target_id TEXT, url TEXT);
CREATE INDEX IF NOT EXISTS sp_ref_value ON sp_ref (target_id, type, param, target_type, seq);
CREATE INDEX IF NOT EXISTS sp_ref_url ON sp_ref (type, param, url, seq) WHERE url IS NOT NULL;
CREATE INDEX IF NOT EXISTS sp_ref_owner ON sp_ref (seq, param);
CREATE TABLE IF NOT EXISTS sp_date (
    type TEXT NOT NULL, seq INTEGER NOT NULL, param TEXT NOT NULL, lo INTEGER NOT NULL,
    hi INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS sp_date_lo ON sp_date (type, param, lo, hi, seq);
CREATE INDEX IF NOT EXISTS sp_date_hi ON sp_date (type, param, hi, lo, seq);
CREATE INDEX IF NOT EXISTS sp_date_owner ON sp_date (seq, param);
CREATE TABLE IF NOT EXISTS sp_number (
    type TEXT NOT NULL, seq INTEGER NOT NULL, param TEXT NOT NULL, value REAL NOT NULL);
CREATE INDEX IF NOT EXISTS sp_number_value ON sp_number (type, param, value, seq);
CREATE INDEX IF NOT EXISTS sp_number_owner ON sp_number (seq, param);
CREATE TABLE IF NOT EXISTS sp_quantity (
    type TEXT NOT NULL, seq INTEGER NOT NULL, param TEXT NOT NULL, system TEXT, code TEXT,
    value REAL NOT NULL);
CREATE INDEX IF NOT EXISTS sp_quantity_value ON sp_quantity (type, param, code, value, seq);
CREATE INDEX IF NOT EXISTS sp_quantity_any ON sp_quantity (type, param, value, seq);
CREATE INDEX IF NOT EXISTS sp_quantity_owner ON sp_quantity (seq, param);
CREATE TABLE IF NOT EXISTS sp_uri (
    type TEXT NOT NULL, seq INTEGER NOT NULL, param TEXT NOT NULL, uri TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS sp_uri_value ON sp_uri (type, param, uri, seq);
CREATE INDEX IF NOT EXISTS sp_uri_owner ON sp_uri (seq, param);
CREATE TABLE IF NOT EXISTS sp_composite (
    type TEXT NOT NULL, seq INTEGER NOT NULL, param TEXT NOT NULL,
    s1 TEXT, c1 TEXT, lo1 REAL, hi1 REAL, s2 TEXT, c2 TEXT, lo2 REAL, hi2 REAL,
    s3 TEXT, c3 TEXT, lo3 REAL, hi3 REAL);
CREATE INDEX IF NOT EXISTS sp_composite_value ON sp_composite (type, param, c1, c2, seq);
CREATE INDEX IF NOT EXISTS sp_composite_owner ON sp_composite (seq, param);
"""

OLD_TABLES = (
    "sp_token",
    "sp_string",
    "sp_ref",
    "sp_date",
    "sp_number",
    "sp_quantity",
    "sp_uri",
    "sp_composite",
)
_CURRENT_JOIN = (
    "JOIN resource_versions r ON r.type = o.type AND r.id = o.id"
    " AND r.is_current = 1 AND r.deleted = 0"
)
# Layout 0 -> 2: (columns of the new table, SELECT over the old one aliased ``o``).
_COPY = {
    "sp_ref": ("type, seq, param, target_type, target_id, url",
               "o.type, r.seq, o.param, o.target_type, o.target_id, o.url"),
    "sp_date": ("type, seq, param, lo, hi", "o.type, r.seq, o.param, o.lo, o.hi"),
    "sp_number": ("type, seq, param, value", "o.type, r.seq, o.param, o.value"),
    "sp_quantity": ("type, seq, param, system, code, value",
                    "o.type, r.seq, o.param, o.system, o.code, o.value"),
    "sp_uri": ("type, seq, param, uri", "o.type, r.seq, o.param, o.uri"),
    "sp_composite": (
        "type, seq, param, s1, c1, lo1, hi1, s2, c2, lo2, hi2, s3, c3, lo3, hi3",
        "o.type, r.seq, o.param, o.s1, o.c1, o.lo1, o.hi1, o.s2, o.c2, o.lo2, o.hi2,"
        " o.s3, o.c3, o.lo3, o.hi3",
    ),
}  # fmt: skip


def _columns(c: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in c.execute(f"PRAGMA table_info({table})")}


def prepare(c: sqlite3.Connection) -> None:
    """Create or upgrade the schema; raise ``StoreLayoutError`` on a newer layout."""
    layout = c.execute("PRAGMA user_version").fetchone()[0]
    if layout > LAYOUT:
        raise StoreLayoutError(
            f"this database has storage layout {layout}, newer than the {LAYOUT} this"
            " Billable knows: open it with the Billable release that wrote it (or newer)"
        )
    c.executescript(VERSIONS + BODIES_SCHEMA)
    upgrade_bodies(c)
    if layout < LAYOUT and "id" in _columns(c, "sp_token"):
        _upgrade_from_layout_0(c)
    else:
        c.executescript(INDEX_TABLES)
    c.execute(f"PRAGMA user_version = {LAYOUT}")


def _upgrade_from_layout_0(c: sqlite3.Connection) -> None:
    """Copy the (type, id)-keyed index rows into the seq-keyed, interned layout."""
    log.warning("upgrading the SQLite store's index layout (once; may take a while)")
    c.execute("BEGIN IMMEDIATE")
    try:
        for table in OLD_TABLES:
            if _columns(c, table):
                c.execute(f"ALTER TABLE {table} RENAME TO {table}_layout0")
        # The old indexes moved with their tables; drop them so the new ones get the names.
        for (name,) in c.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name LIKE '%_layout0'"
        ).fetchall():
            c.execute(f"DROP INDEX {name}")
        for statement in INDEX_TABLES.split(";"):
            if statement.strip():
                c.execute(statement)
        c.execute(
            "INSERT OR IGNORE INTO sp_token_terms (type, param, system, code)"
            " SELECT DISTINCT type, param, system, code FROM sp_token_layout0"
        )
        c.execute(
            "INSERT OR IGNORE INTO sp_token (term, seq) SELECT t.term, r.seq"
            f" FROM sp_token_layout0 o {_CURRENT_JOIN}"
            " JOIN sp_token_terms t ON t.param = o.param AND t.code = o.code"
            " AND t.system IS o.system AND t.type = o.type"
        )
        c.execute(
            "INSERT OR IGNORE INTO sp_string_terms (type, param, norm, exact)"
            " SELECT DISTINCT type, param, norm, exact FROM sp_string_layout0"
        )
        c.execute(
            "INSERT OR IGNORE INTO sp_string (term, seq) SELECT t.term, r.seq"
            f" FROM sp_string_layout0 o {_CURRENT_JOIN}"
            " JOIN sp_string_terms t ON t.param = o.param AND t.norm = o.norm"
            " AND t.exact = o.exact AND t.type = o.type"
        )
        for table, (columns, select) in _COPY.items():
            if _columns(c, f"{table}_layout0"):
                c.execute(
                    f"INSERT INTO {table} ({columns}) SELECT {select}"
                    f" FROM {table}_layout0 o {_CURRENT_JOIN}"
                )
        for table in OLD_TABLES:
            c.execute(f"DROP TABLE IF EXISTS {table}_layout0")
        c.execute(f"PRAGMA user_version = {LAYOUT}")
        c.execute("COMMIT")
    except BaseException:
        c.execute("ROLLBACK")
        raise
