"""Evaluate a search expression against one resource's extracted index, in memory.

For matching resources that are not stored yet, e.g. the entries of a transaction
Bundle planned in the same commit (conditional references and conditional creates must
see them). Same semantics as the backends' renderers; chains and ``_has`` need other
resources and are not evaluated here (``UnsupportedInMemory``).
"""

from __future__ import annotations

import math

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
    Or,
    Quantities,
    Range,
    Reference,
    String,
    Token,
    TokenValue,
    Uri,
)
from server.search.sql_render import uri_above
from server.storage.port import SearchIndex


class UnsupportedInMemory(ValueError):
    """Chains and ``_has`` cannot be evaluated against one resource alone."""


def _token_matches(v: TokenValue, system: str | None, code: str) -> bool:
    if v.code is None:
        return system == v.system
    if v.code != code:
        return False
    if v.system is not None:
        return system == v.system
    return system is None if v.system_given else True


def _date_matches(lo: float, hi: float, r: Range) -> bool:
    p = r.prefix
    eq = lo >= r.lo and hi <= r.hi
    return {
        "eq": eq,
        "ne": not eq,
        "gt": hi > r.hi,
        "lt": lo < r.lo,
        "ge": hi >= r.lo,
        "le": lo <= r.hi,
        "sa": lo > r.hi,
        "eb": hi < r.lo,
        "ap": lo <= r.hi and hi >= r.lo,
    }[p]


def _number_matches(value: float, r: Range) -> bool:
    from server.search.parse import number_bounds

    lo, lo_incl, hi, hi_incl, negate = number_bounds(r)
    ok = True
    if not math.isinf(lo):
        ok = value >= lo if lo_incl else value > lo
    if ok and not math.isinf(hi):
        ok = value <= hi if hi_incl else value < hi
    return ok != negate


def _present(index: SearchIndex, param: str) -> bool:
    return any(
        row[0] == param
        for rows in (
            index.tokens,
            index.strings,
            index.references,
            index.dates,
            index.numbers,
            index.quantities,
            index.uris,
            index.composites,
        )
        for row in rows
    )


def matches(e: Expr | None, rid: str, index: SearchIndex) -> bool:
    """Whether the resource with id ``rid`` and ``index`` matches ``e``."""
    if e is None:
        return True
    if isinstance(e, Ids):
        return rid in e.ids
    if isinstance(e, Token):
        return any(
            p == e.param and _token_matches(v, s, c) for p, s, c in index.tokens for v in e.values
        )
    if isinstance(e, String):
        for p, norm, exact in index.strings:
            if p != e.param:
                continue
            for v in e.values:
                if e.mode == "exact" and exact == v:
                    return True
                if e.mode == "contains" and v in norm:
                    return True
                if e.mode == "start" and norm.startswith(v):
                    return True
        return False
    if isinstance(e, Reference):
        for p, rtype, tid, url in index.references:
            if p != e.param:
                continue
            for ref in e.values:
                if ref.url is not None and url == ref.url:
                    return True
                if ref.url is None and tid == ref.id and ref.type in (None, rtype):
                    return True
        return False
    if isinstance(e, Dates):
        return any(
            p == e.param and _date_matches(lo, hi, r) for p, lo, hi in index.dates for r in e.values
        )
    if isinstance(e, Numbers):
        return any(
            p == e.param and _number_matches(v, r) for p, v in index.numbers for r in e.values
        )
    if isinstance(e, Quantities):
        return any(
            p == e.param
            and (r.code is None or r.code == code)
            and (r.system is None or r.system == system)
            and _number_matches(v, r)
            for p, system, code, v in index.quantities
            for r in e.values
        )
    if isinstance(e, Uri):
        for p, uri in index.uris:
            if p != e.param:
                continue
            for v in e.values:
                if e.mode == "eq" and uri == v:
                    return True
                if e.mode == "below" and (uri == v or uri.startswith(v.rstrip("/") + "/")):
                    return True
                if e.mode == "above" and uri in uri_above(v):
                    return True
        return False
    if isinstance(e, Missing):
        return _present(index, e.param) != e.missing
    if isinstance(e, Not):
        return not matches(e.expr, rid, index)
    if isinstance(e, And):
        return all(matches(x, rid, index) for x in e.exprs)
    if isinstance(e, Or):
        return any(matches(x, rid, index) for x in e.exprs)
    if isinstance(e, Composite):
        return _composite_matches(e, index)
    if isinstance(e, Chain | Has):
        raise UnsupportedInMemory("chained criteria need the referenced resources")
    raise TypeError(f"cannot evaluate {e!r}")


def _composite_matches(e: Composite, index: SearchIndex) -> bool:
    for p, parts in index.composites:
        if p != e.param:
            continue
        for value in e.values:
            if len(value.parts) > len(parts):
                continue
            ok = True
            for leaf, part in zip(value.parts, parts, strict=False):
                if isinstance(leaf, Token):
                    ok = any(_token_matches(v, part.s, part.c or "") for v in leaf.values)
                elif isinstance(leaf, Quantities | Numbers):
                    ok = part.lo is not None and any(
                        _number_matches(part.lo, r)
                        and (not isinstance(leaf, Quantities) or r.code in (None, part.c))
                        and (not isinstance(leaf, Quantities) or r.system in (None, part.s))
                        for r in leaf.values
                    )
                elif isinstance(leaf, Dates):
                    ok = (
                        part.lo is not None
                        and part.hi is not None
                        and any(_date_matches(part.lo, part.hi, r) for r in leaf.values)
                    )
                elif isinstance(leaf, String):
                    ok = any((part.c or "").startswith(v) for v in leaf.values)
                elif isinstance(leaf, Reference):
                    ok = any(v.id == part.c and v.type in (None, part.s) for v in leaf.values)
                elif isinstance(leaf, Uri):
                    ok = part.c in leaf.values
                if not ok:
                    break
            if ok:
                return True
    return False
