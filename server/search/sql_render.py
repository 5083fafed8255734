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
"""

from __future__ import annotations

import math
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
    Leaf,
    Missing,
    Not,
    Numbers,
    OfType,
    Or,
    Quantities,
    Range,
    Reference,
    String,
    Token,
    Uri,
)
from server.search.values import string_upper_bound
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

SQL = tuple[str, list[Any]]


def _num(value: float) -> float | int:
    if math.isinf(value):
        return value
    return value


def _or(parts: list[SQL]) -> SQL:
    if not parts:
        return "0", []
    if len(parts) == 1:
        return parts[0]
    args: list[Any] = []
    for _, a in parts:
        args.extend(a)
    return "(" + " OR ".join(f"({s})" for s, _ in parts) + ")", args


def _and(parts: list[SQL]) -> SQL:
    if not parts:
        return "1", []
    args: list[Any] = []
    for _, a in parts:
        args.extend(a)
    return " AND ".join(f"({s})" for s, _ in parts), args


def token_pred(t: str, e: Token) -> SQL:
    parts: list[SQL] = []
    for v in e.values:
        if v.code is None:
            parts.append((f"{t}.system = ?", [v.system]))
        elif v.system is not None:
            parts.append((f"{t}.code = ? AND {t}.system = ?", [v.code, v.system]))
        elif v.system_given:
            parts.append((f"{t}.code = ? AND {t}.system IS NULL", [v.code]))
        else:
            parts.append((f"{t}.code = ?", [v.code]))
    codes_only = [v.code for v in e.values if v.system is None and not v.system_given]
    if len(codes_only) == len(e.values) and len(codes_only) > 1:
        parts = [(f"{t}.code IN ({','.join('?' * len(codes_only))})", list(codes_only))]
    sql, args = _or(parts)
    return f"{t}.param = ? AND {sql}", [e.param, *args]


def string_pred(t: str, e: String) -> SQL:
    parts: list[SQL] = []
    for v in e.values:
        if e.mode == "exact":
            parts.append((f"{t}.exact = ?", [v]))
        elif e.mode == "contains":
            parts.append((f"instr({t}.norm, ?) > 0", [v]))
        else:
            parts.append((f"{t}.norm >= ? AND {t}.norm < ?", [v, string_upper_bound(v)]))
    sql, args = _or(parts)
    return f"{t}.param = ? AND {sql}", [e.param, *args]


def reference_pred(t: str, e: Reference) -> SQL:
    parts: list[SQL] = []
    for v in e.values:
        if v.url is not None:
            parts.append((f"{t}.url = ?", [v.url]))
        elif v.type is not None:
            parts.append((f"{t}.target_id = ? AND {t}.target_type = ?", [v.id, v.type]))
        else:
            parts.append((f"{t}.target_id = ?", [v.id]))
    sql, args = _or(parts)
    return f"{t}.param = ? AND {sql}", [e.param, *args]


def date_range_pred(lo: str, hi: str, r: Range) -> SQL:
    """Resource range [lo, hi] against the search range of ``r`` (R4 prefix semantics)."""
    slo, shi = int(r.lo), int(r.hi)
    p = r.prefix
    if p == "eq":
        return f"{lo} >= ? AND {hi} <= ?", [slo, shi]
    if p == "ne":
        return f"NOT ({lo} >= ? AND {hi} <= ?)", [slo, shi]
    if p == "gt":
        return f"{hi} > ?", [shi]
    if p == "lt":
        return f"{lo} < ?", [slo]
    if p == "ge":
        return f"{hi} >= ?", [slo]
    if p == "le":
        return f"{lo} <= ?", [shi]
    if p == "sa":
        return f"{lo} > ?", [shi]
    if p == "eb":
        return f"{hi} < ?", [slo]
    return f"{lo} <= ? AND {hi} >= ?", [shi, slo]  # ap: overlaps the widened range


def number_pred(col: str, r: Range) -> SQL:
    from server.search.parse import number_bounds

    lo, lo_incl, hi, hi_incl, negate = number_bounds(r)
    parts: list[SQL] = []
    if not math.isinf(lo):
        parts.append((f"{col} {'>=' if lo_incl else '>'} ?", [lo]))
    if not math.isinf(hi):
        parts.append((f"{col} {'<=' if hi_incl else '<'} ?", [hi]))
    sql, args = _and(parts)
    return (f"NOT ({sql})", args) if negate else (sql, args)


def dates_pred(t: str, e: Dates) -> SQL:
    sql, args = _or([date_range_pred(f"{t}.lo", f"{t}.hi", r) for r in e.values])
    return f"{t}.param = ? AND {sql}", [e.param, *args]


def numbers_pred(t: str, e: Numbers) -> SQL:
    sql, args = _or([number_pred(f"{t}.value", r) for r in e.values])
    return f"{t}.param = ? AND {sql}", [e.param, *args]


def quantity_pred(t: str, e: Quantities) -> SQL:
    parts: list[SQL] = []
    for r in e.values:
        sql, args = number_pred(f"{t}.value", r)
        if r.code is not None:
            sql, args = f"{t}.code = ? AND {sql}", [r.code, *args]
        if r.system is not None:
            sql, args = f"{t}.system = ? AND {sql}", [r.system, *args]
        parts.append((sql, args))
    sql, args = _or(parts)
    return f"{t}.param = ? AND {sql}", [e.param, *args]


def uri_above(uri: str) -> list[str]:
    """Every URI ``uri`` is below (itself and each parent path)."""
    out = [uri]
    head = uri
    while "/" in head.rstrip("/"):
        head = head.rstrip("/").rsplit("/", 1)[0]
        if head.endswith(":") or head.endswith(":/"):
            break
        out.append(head)
    return out


def uri_pred(t: str, e: Uri) -> SQL:
    parts: list[SQL] = []
    for v in e.values:
        if e.mode == "below":
            parts.append(
                (
                    f"({t}.uri = ? OR ({t}.uri >= ? AND {t}.uri < ?))",
                    [v, v.rstrip("/") + "/", string_upper_bound(v.rstrip("/") + "/")],
                )
            )
        elif e.mode == "above":
            ups = uri_above(v)
            parts.append((f"{t}.uri IN ({','.join('?' * len(ups))})", ups))
        else:
            parts.append((f"{t}.uri = ?", [v]))
    sql, args = _or(parts)
    return f"{t}.param = ? AND {sql}", [e.param, *args]


def _component_pred(t: str, i: int, leaf: Leaf) -> SQL:
    s, c, lo, hi = f"{t}.s{i}", f"{t}.c{i}", f"{t}.lo{i}", f"{t}.hi{i}"
    parts: list[SQL] = []
    if isinstance(leaf, Token):
        for v in leaf.values:
            if v.code is None:
                parts.append((f"{s} = ?", [v.system]))
            elif v.system is not None:
                parts.append((f"{c} = ? AND {s} = ?", [v.code, v.system]))
            elif v.system_given:
                parts.append((f"{c} = ? AND {s} IS NULL", [v.code]))
            else:
                parts.append((f"{c} = ?", [v.code]))
    elif isinstance(leaf, Quantities | Numbers):
        for r in leaf.values:
            sql, args = number_pred(lo, r)
            if isinstance(leaf, Quantities):
                if r.code is not None:
                    sql, args = f"{c} = ? AND {sql}", [r.code, *args]
                if r.system is not None:
                    sql, args = f"{s} = ? AND {sql}", [r.system, *args]
            parts.append((sql, args))
    elif isinstance(leaf, Dates):
        parts = [date_range_pred(lo, hi, r) for r in leaf.values]
    elif isinstance(leaf, String):
        for text in leaf.values:
            parts.append((f"{c} >= ? AND {c} < ?", [text, string_upper_bound(text)]))
    elif isinstance(leaf, Reference):
        for rv in leaf.values:
            if rv.type is not None:
                parts.append((f"{c} = ? AND {s} = ?", [rv.id, rv.type]))
            else:
                parts.append((f"{c} = ?", [rv.id]))
    elif isinstance(leaf, Uri):
        parts = [(f"{c} = ?", [v]) for v in leaf.values]
    return _or(parts)


def composite_pred(t: str, e: Composite) -> SQL:
    parts: list[SQL] = []
    for value in e.values:
        parts.append(_and([_component_pred(t, i + 1, leaf) for i, leaf in enumerate(value.parts)]))
    sql, args = _or(parts)
    return f"{t}.param = ? AND {sql}", [e.param, *args]


def _leaf_pred(t: str, e: Expr) -> tuple[str, SQL] | None:
    """The table of a leaf and its predicate (on the terms table for tokens/strings)."""
    if isinstance(e, Token):
        return "sp_token", token_pred(t, e)
    if isinstance(e, String):
        return "sp_string", string_pred(t, e)
    if isinstance(e, Reference):
        return "sp_ref", reference_pred(t, e)
    if isinstance(e, Dates):
        return "sp_date", dates_pred(t, e)
    if isinstance(e, Numbers):
        return "sp_number", numbers_pred(t, e)
    if isinstance(e, Quantities):
        return "sp_quantity", quantity_pred(t, e)
    if isinstance(e, Uri):
        return "sp_uri", uri_pred(t, e)
    if isinstance(e, Composite):
        return "sp_composite", composite_pred(t, e)
    return None


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


@dataclass
class Renderer:
    """Renders one query; numbers table aliases so nested sub-queries never clash."""

    counter: int = 0
    notes: list[str] = field(default_factory=list)

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
            return f"SELECT {t}.term FROM {TERMS[table]} {t} WHERE {sql}", args
        return f"SELECT {t}.term FROM {TERMS[table]} {t} WHERE {sql} AND {t}.type = ?", [
            *args,
            rtype,
        ]

    # -- conditions on an outer row ------------------------------------------------

    def cond(self, e: Expr, row: str, rtype: str | None = None) -> SQL:
        """A condition on the ``resource_versions`` row ``row``; ``rtype`` its type when
        the caller knows it (narrows term look-ups), else any type."""
        a = self.alias()
        leaf = _leaf_pred("{T}" if isinstance(e, Token | String) else a, e)
        if leaf is not None:
            table, pred = leaf
            if table in TERMS:
                terms, args = self._terms(table, pred, rtype)
                return (
                    f"EXISTS (SELECT 1 FROM {table} {a} INDEXED BY {table}_owner"
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
            return _and([self.cond(x, row, rtype) for x in e.exprs])
        if isinstance(e, Or):
            return _or([self.cond(x, row, rtype) for x in e.exprs])
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
            inner, args = self.ids_any(e.expr, e.source_type)
            return (
                f"EXISTS (SELECT 1 FROM sp_ref {a} INDEXED BY sp_ref_value"
                f" WHERE {a}.target_id = {row}.id AND {a}.type = ? AND {a}.param = ?"
                f" AND {a}.target_type = {row}.type AND {a}.seq IN ({inner}))",
                [e.source_type, e.param, *args],
            )
        raise TypeError(f"cannot render {e!r}")

    # -- id sets ---------------------------------------------------------------------

    def ids(self, e: Expr, rtype: str) -> SQL | None:
        """``SELECT seq`` of the ``rtype`` resources matching positive ``e``, else ``None``."""
        a = self.alias()
        leaf = _leaf_pred("{T}" if isinstance(e, Token | String) else a, e)
        if leaf is not None:
            table, pred = leaf
            if table in TERMS:
                terms, args = self._terms(table, pred, rtype)
                return f"SELECT {a}.seq FROM {table} {a} WHERE {a}.term IN ({terms})", args
            sql, args = pred
            return f"SELECT {a}.seq FROM {table} {a} WHERE {a}.type = ? AND {sql}", [rtype, *args]
        if isinstance(e, Ids):
            if not e.ids:
                return "SELECT NULL WHERE 0", []
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
            if not rest:
                return sub
            r = self.alias()
            cond, cargs = _and([self.cond(x, r, rtype) for x in rest])
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
        ors.append(_and(parts))
    return _or(ors)
