"""SQL predicates of one leaf of a search expression, on one index table row.

Each function renders the criterion of one parameter type against the columns of its
``sp_*`` table (tokens and strings: against their terms table, see ``sql_render``);
``sql_render`` wraps them into ``EXISTS`` probes and id sets.
"""

from __future__ import annotations

import math
from typing import Any

from server.search.expr import (
    Composite,
    Dates,
    Expr,
    Leaf,
    Numbers,
    Quantities,
    Range,
    Reference,
    String,
    Token,
    Uri,
)
from server.search.values import string_upper_bound

SQL = tuple[str, list[Any]]


def _num(value: float) -> float | int:
    if math.isinf(value):
        return value
    return value


def or_(parts: list[SQL]) -> SQL:
    if not parts:
        return "0", []
    if len(parts) == 1:
        return parts[0]
    args: list[Any] = []
    for _, a in parts:
        args.extend(a)
    return "(" + " OR ".join(f"({s})" for s, _ in parts) + ")", args


def and_(parts: list[SQL]) -> SQL:
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
    sql, args = or_(parts)
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
    sql, args = or_(parts)
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
    sql, args = or_(parts)
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
    sql, args = and_(parts)
    return (f"NOT ({sql})", args) if negate else (sql, args)


def dates_pred(t: str, e: Dates) -> SQL:
    sql, args = or_([date_range_pred(f"{t}.lo", f"{t}.hi", r) for r in e.values])
    return f"{t}.param = ? AND {sql}", [e.param, *args]


def numbers_pred(t: str, e: Numbers) -> SQL:
    sql, args = or_([number_pred(f"{t}.value", r) for r in e.values])
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
    sql, args = or_(parts)
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
    sql, args = or_(parts)
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
    return or_(parts)


def composite_pred(t: str, e: Composite) -> SQL:
    parts: list[SQL] = []
    for value in e.values:
        parts.append(and_([_component_pred(t, i + 1, leaf) for i, leaf in enumerate(value.parts)]))
    sql, args = or_(parts)
    return f"{t}.param = ? AND {sql}", [e.param, *args]


def leaf_pred(t: str, e: Expr) -> tuple[str, SQL] | None:
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
