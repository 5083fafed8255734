"""Render a search expression tree as SQLite SQL over the ``sp_*`` index tables.

Index rows belong to current, non-deleted versions only and are keyed by the version's
``seq`` (the ``resource_versions`` row id), not by (type, id) text: the key is a few
bytes instead of ~50 in every row and index entry. Token and string values are
interned: ``sp_token``/``sp_string`` rows are ``(term, seq)`` pairs and each distinct
(type, param, value) lives once in ``sp_token_terms``/``sp_string_terms`` (a display
such as "Body mass index" is stored once, not once per Observation). The schema is in
``server.storage.sqlite_schema``.

An expression renders in two forms:

* ``cond(e, row)``: a boolean SQL condition on the ``resource_versions`` row aliased
  ``row`` (a correlated ``EXISTS`` probing the ``(seq, ...)`` owner index);
* ``ids(e, type)``: ``SELECT seq ...`` of every resource of ``type`` matching ``e``,
  only for positive expressions (an index range scan on the value index).

The top-level query drives from the most selective positive term (``ids``) and checks
the others with ``cond``: SQLite then walks one index range instead of the whole type.
Terms whose condition reads only the row's ``seq`` (``seq_only``: every index-table
probe) filter the driver's row ids *before* ``resource_versions`` is read (``narrow``):
a patient with 20,000 Observations of which 256 have the code costs 20,000 index probes
and 256 row reads, not 20,000 of each (rows carry their bodies, so each read of one is a
page of its own).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.search.expr import (
    And,
    Chain,
    Composite,
    Dates,
    Expr,
    Has,
    Ids,
    Missing,
    Not,
    Numbers,
    OfType,
    Or,
    Quantities,
    Reference,
    String,
    Token,
    Uri,
)
from server.search.sql_predicates import SQL, and_, leaf_pred, or_
from server.search.sql_predicates import uri_above as uri_above  # re-exported
from server.storage.port import SortKey

TABLES = {
    "token": "sp_token",
    "string": "sp_string",
    "reference": "sp_ref",
    "date": "sp_date",
    "number": "sp_number",
    "quantity": "sp_quantity",
    "uri": "sp_uri",
    "composite": "sp_composite",
}
# Token and string rows are (term, seq) pairs: the values live once in a terms table.
TERMS = {"sp_token": "sp_token_terms", "sp_string": "sp_string_terms"}
COMPOSITE_WIDTH = 3

CURRENT = "is_current = 1 AND deleted = 0"
# Sort sentinels for resources without a value: last in either direction.
ASC_MISSING = "x'ff'"
DESC_MISSING = "-1e999"


def seq_only(e: Expr) -> bool:
    """Whether ``Renderer.cond(e, row)`` reads nothing of ``row`` but ``row.seq``: leaves,
    ``:missing`` and chains probe index tables by row id; ``_id``, a type restriction and
    ``_has`` read the row's id or type."""
    if isinstance(e, Not):
        return seq_only(e.expr)
    if isinstance(e, And | Or):
        return all(seq_only(x) for x in e.exprs)
    return not isinstance(e, Ids | OfType | Has)


def rank(e: Expr) -> int:
    """How selective a positive term usually is (lower first); 99: cannot drive."""
    if isinstance(e, Ids):
        return 0
    if isinstance(e, Reference):
        return 1
    if isinstance(e, Token):
        if e.param.endswith(("identifier", ":of-type")) or all(
            v.system is not None and v.code is not None for v in e.values
        ):
            return 2
        return 6
    if isinstance(e, String):
        return 3 if e.mode != "contains" else 8
    if isinstance(e, Composite | Uri):
        return 3
    if isinstance(e, Chain | Has):
        return 4
    if isinstance(e, Quantities | Numbers):
        return 5
    if isinstance(e, Dates):
        return 7
    if isinstance(e, Or):
        ranks = [rank(x) for x in e.exprs]
        return max(ranks) if ranks else 99
    if isinstance(e, And):
        ranks = [rank(x) for x in e.exprs]
        return min(ranks) if ranks else 99
    return 99


# The interned term ids matching a ``SELECT term FROM sp_*_terms ...`` (sql, args).
TermLookup = Callable[[str, list[Any]], list[int]]
# More resolved terms than this stay a sub-query (SQLite allows 32,766 parameters).
INLINE_TERMS = 500


@dataclass
class Renderer:
    """Renders one query; numbers table aliases so nested sub-queries never clash.

    ``lookup``: resolves a token or string criterion to its term ids before the query
    runs, so that each probe is one primary-key look-up ``(term, seq)`` instead of a walk
    over an ``IN (SELECT term ...)`` list (2.5 ms of 8 for 20,000 probes)."""

    counter: int = 0
    notes: list[str] = field(default_factory=list)
    lookup: TermLookup | None = None

    def alias(self) -> str:
        self.counter += 1
        return f"t{self.counter}"

    def _terms(self, table: str, pred: SQL, rtype: str | None) -> SQL:
        """``SELECT term`` of the interned values matching ``pred`` (uncorrelated: SQLite
        evaluates it once per statement, then probes ``(term, seq)``)."""
        t = self.alias()
        sql, args = pred
        sql = sql.replace("{T}", t)
        if rtype is None:
            found: SQL = f"SELECT {t}.term FROM {TERMS[table]} {t} WHERE {sql}", args
        else:
            found = (
                f"SELECT {t}.term FROM {TERMS[table]} {t} WHERE {sql} AND {t}.type = ?",
                [
                    *args,
                    rtype,
                ],
            )
        if self.lookup is None:
            return found
        ids = self.lookup(*found)
        if len(ids) > INLINE_TERMS:  # e.g. :contains on a common letter: keep the sub-query
            return found
        return ",".join("?" * len(ids)), list(ids)

    # -- conditions on an outer row ------------------------------------------------

    def cond(self, e: Expr, row: str, rtype: str | None = None) -> SQL:
        """A condition on the ``resource_versions`` row ``row``; ``rtype`` its type when
        the caller knows it (narrows term look-ups), else any type."""
        a = self.alias()
        leaf = leaf_pred("{T}" if isinstance(e, Token | String) else a, e)
        if leaf is not None:
            table, pred = leaf
            if table in TERMS:
                terms, args = self._terms(table, pred, rtype)
                # Resolved ids: the (term, seq) primary key answers the probe directly.
                inlined = not terms.startswith("SELECT")
                index = "" if inlined else f" INDEXED BY {table}_owner"
                return (
                    f"EXISTS (SELECT 1 FROM {table} {a}{index}"
                    f" WHERE {a}.seq = {row}.seq AND {a}.term IN ({terms}))",
                    args,
                )
            sql, args = pred
            return (
                f"EXISTS (SELECT 1 FROM {table} {a} INDEXED BY {table}_owner"
                f" WHERE {a}.seq = {row}.seq AND {sql})",
                args,
            )
        if isinstance(e, Ids):
            if not e.ids:
                return "0", []
            return f"{row}.id IN ({','.join('?' * len(e.ids))})", list(e.ids)
        if isinstance(e, OfType):
            if not e.types:
                return "0", []
            return f"{row}.type IN ({','.join('?' * len(e.types))})", list(e.types)
        if isinstance(e, Missing):
            table = TABLES.get(e.kind, "sp_token")
            if table in TERMS:
                t = self.alias()
                exists = (
                    f"EXISTS (SELECT 1 FROM {table} {a} INDEXED BY {table}_owner"
                    f" JOIN {TERMS[table]} {t} ON {t}.term = {a}.term"
                    f" WHERE {a}.seq = {row}.seq AND {t}.param = ?)"
                )
            else:
                exists = (
                    f"EXISTS (SELECT 1 FROM {table} {a} INDEXED BY {table}_owner"
                    f" WHERE {a}.seq = {row}.seq AND {a}.param = ?)"
                )
            return (f"NOT {exists}" if e.missing else exists), [e.param]
        if isinstance(e, Not):
            sql, args = self.cond(e.expr, row, rtype)
            return f"NOT ({sql})", args
        if isinstance(e, And):
            return and_([self.cond(x, row, rtype) for x in e.exprs])
        if isinstance(e, Or):
            return or_([self.cond(x, row, rtype) for x in e.exprs])
        if isinstance(e, Chain):
            inner, args = self.ids_any(e.expr, e.target_type)
            v = self.alias()
            return (
                f"EXISTS (SELECT 1 FROM sp_ref {a} INDEXED BY sp_ref_owner"
                f" WHERE {a}.seq = {row}.seq AND {a}.param = ? AND {a}.target_type = ?"
                f" AND {a}.target_id IN"
                f" (SELECT {v}.id FROM resource_versions {v} WHERE {v}.seq IN ({inner})))",
                [e.param, e.target_type, *args],
            )
        if isinstance(e, Has):
            # Correlated: the row's referrers (its compartment's few) are checked one by
            # one, so the cost follows the rows checked, never all of the source type's
            # matches (a common code matches thousands of Conditions).
            s = self.alias()
            inner, args = self.cond(e.expr, s, e.source_type)
            return (
                f"EXISTS (SELECT 1 FROM sp_ref {a} INDEXED BY sp_ref_value"
                f" JOIN resource_versions {s} ON {s}.seq = {a}.seq"
                f" WHERE {a}.target_id = {row}.id AND {a}.type = ? AND {a}.param = ?"
                f" AND {a}.target_type = {row}.type AND {inner})",
                [e.source_type, e.param, *args],
            )
        raise TypeError(f"cannot render {e!r}")

    # -- id sets ---------------------------------------------------------------------

    def narrow(self, sub: SQL, terms: list[Expr], rtype: str | None) -> SQL:
        """``sub`` (``SELECT seq``) less the row ids failing any of the ``seq_only``
        ``terms``: index probes only, no ``resource_versions`` read (index rows belong to
        current versions, so every id ``ids`` gives is a current one)."""
        if not terms:
            return sub
        d = self.alias()
        cond, args = and_([self.cond(x, d, rtype) for x in terms])
        return f"SELECT {d}.seq FROM ({sub[0]}) {d} WHERE {cond}", [*sub[1], *args]

    def ids(self, e: Expr, rtype: str) -> SQL | None:
        """``SELECT seq`` of the ``rtype`` resources matching positive ``e``, else ``None``."""
        a = self.alias()
        leaf = leaf_pred("{T}" if isinstance(e, Token | String) else a, e)
        if leaf is not None:
            table, pred = leaf
            if table in TERMS:
                terms, args = self._terms(table, pred, rtype)
                return f"SELECT {a}.seq FROM {table} {a} WHERE {a}.term IN ({terms})", args
            sql, args = pred
            return f"SELECT {a}.seq FROM {table} {a} WHERE {a}.type = ? AND {sql}", [rtype, *args]
        if isinstance(e, Ids):
            if not e.ids:
                return "SELECT NULL AS seq WHERE 0", []
            return (
                f"SELECT {a}.seq FROM resource_versions {a} WHERE {a}.type = ?"
                f" AND {a}.id IN ({','.join('?' * len(e.ids))}) AND {a}.{CURRENT}",
                [rtype, *e.ids],
            )
        if isinstance(e, Chain):
            inner, args = self.ids_any(e.expr, e.target_type)
            v = self.alias()
            return (
                f"SELECT {a}.seq FROM sp_ref {a} WHERE {a}.target_id IN"
                f" (SELECT {v}.id FROM resource_versions {v} WHERE {v}.seq IN ({inner}))"
                f" AND {a}.type = ? AND {a}.param = ? AND {a}.target_type = ?",
                [*args, rtype, e.param, e.target_type],
            )
        if isinstance(e, Has):
            inner, args = self.ids_any(e.expr, e.source_type)
            v = self.alias()
            return (
                f"SELECT {v}.seq FROM resource_versions {v} WHERE {v}.type = ? AND {v}.{CURRENT}"
                f" AND {v}.id IN (SELECT {a}.target_id FROM sp_ref {a} INDEXED BY sp_ref_owner"
                f" WHERE {a}.seq IN ({inner}) AND {a}.param = ? AND {a}.target_type = ?)",
                [rtype, *args, e.param, rtype],
            )
        if isinstance(e, Or):
            subs = [self.ids(x, rtype) for x in e.exprs]
            if not subs or any(s is None for s in subs):
                return None
            args = [x for s in subs if s for x in s[1]]
            return " UNION ".join(s[0] for s in subs if s), args
        if isinstance(e, And):
            driver, rest = split_driver(list(e.exprs))
            if driver is None:
                return None
            sub = self.ids(driver, rtype)
            if sub is None:
                return None
            sub = self.narrow(sub, [x for x in rest if seq_only(x)], rtype)
            rest = [x for x in rest if not seq_only(x)]
            if not rest:
                return sub
            r = self.alias()
            cond, cargs = and_([self.cond(x, r, rtype) for x in rest])
            return (
                f"SELECT {r}.seq FROM resource_versions {r} WHERE {r}.seq IN ({sub[0]})"
                f" AND {r}.{CURRENT} AND {cond}",
                [*sub[1], *cargs],
            )
        return None

    def ids_any(self, e: Expr, rtype: str) -> SQL:
        """``ids`` when ``e`` is positive, else a scan of the type's current resources."""
        sub = self.ids(e, rtype)
        if sub is not None:
            return sub
        r = self.alias()
        cond, args = self.cond(e, r, rtype)
        return (
            f"SELECT {r}.seq FROM resource_versions {r} WHERE {r}.type = ? AND {r}.{CURRENT}"
            f" AND {cond}",
            [rtype, *args],
        )

    # -- sorting ---------------------------------------------------------------------

    def sort_expr(self, key: SortKey) -> str:
        if key.kind == "id":
            return "r.id"
        if key.kind == "lastUpdated":
            return "r.last_updated"
        a = self.alias()
        agg = "MAX" if key.descending else "MIN"
        table = TABLES[key.kind]
        missing = DESC_MISSING if key.descending else ASC_MISSING
        param = _quote(key.param)
        if table in TERMS:
            t = self.alias()
            column = f"{t}.code" if key.kind == "token" else f"{t}.norm"
            return (
                f"COALESCE((SELECT {agg}({column}) FROM {table} {a} INDEXED BY {table}_owner"
                f" JOIN {TERMS[table]} {t} ON {t}.term = {a}.term"
                f" WHERE {a}.seq = r.seq AND {t}.param = '{param}'), {missing})"
            )
        column = {
            "reference": f"COALESCE({a}.target_type || '/' || {a}.target_id, {a}.url)",
            "date": f"{a}.hi" if key.descending else f"{a}.lo",
            "number": f"{a}.value",
            "quantity": f"{a}.value",
            "uri": f"{a}.uri",
        }[key.kind]
        return (
            f"COALESCE((SELECT {agg}({column}) FROM {table} {a} INDEXED BY {table}_owner"
            f" WHERE {a}.seq = r.seq AND {a}.param = '{param}'), {missing})"
        )


def _quote(text: str) -> str:
    return text.replace("'", "''")


def split_driver(terms: list[Expr]) -> tuple[Expr | None, list[Expr]]:
    """The most selective positive term, and the rest."""
    best: Expr | None = None
    best_rank = 99
    for term in terms:
        r = rank(term)
        if r < best_rank:
            best, best_rank = term, r
    if best is None:
        return None, terms
    rest = list(terms)
    rest.remove(best)
    return best, rest


def keyset(keys: list[tuple[str, bool]], position: tuple[Any, ...], backwards: bool) -> SQL:
    """Rows strictly after ``position`` in the order ``keys`` (before, when ``backwards``)."""
    ors: list[SQL] = []
    for i, (expr, desc) in enumerate(keys):
        parts: list[SQL] = [(f"{keys[j][0]} = ?", [position[j]]) for j in range(i)]
        greater = desc == backwards
        parts.append((f"{expr} {'>' if greater else '<'} ?", [position[i]]))
        ors.append(and_(parts))
    return or_(ors)
