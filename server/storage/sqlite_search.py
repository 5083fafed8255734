"""The SQL of one search page, its total and ``_include``/``_revinclude`` on SQLite.

Conditions come from ``server.search.sql_render``; this module puts them into the page
query: current versions of the asked types, driven by the most selective term,
ordered by the sort keys then type and id (the keyset the paging positions carry).
"""

from __future__ import annotations

import sqlite3
from typing import Any, NamedTuple, TypeVar

from server.search import sql_render
from server.search.expr import And, Expr, Has
from server.spec.resources import resource_types
from server.storage.port import IncludeSpec, SearchQuery

SQL = tuple[str, list[object]]
T = TypeVar("T")


def chunks(items: list[T], size: int) -> list[list[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# A driver matching at least this many resources is not worth materialising and sorting
# for a page in id order: walking the type's (type, id) index and probing is cheaper.
ORDERED_SCAN_FROM = 2000


class PageSQL(NamedTuple):
    """The SQL of one page (``SELECT k..., seq``: sort keys, type, id, then the row), of
    its total if asked, and ``probe``: the driver's matches when the page could instead
    be read in index order (no ``_sort``); ``probe_is_driver``: the probe's ids are the
    very ids the page filters (so they can be handed back as ``known``), not ``_has``'s
    referrers."""

    text: str
    args: list[object]
    total_sql: SQL | None
    probe: SQL | None
    probe_is_driver: bool = False


def render_search(
    query: SearchQuery,
    ordered: bool = False,
    known: str | None = None,
    lookup: sql_render.TermLookup | None = None,
) -> PageSQL:
    """The page of ``query``: driven by the most selective term, the other terms that
    only probe index tables folded into the driver (``Renderer.narrow``).

    ``ordered``: no driver; SQLite walks ``(type, id)`` in order, checking every term,
    and stops at the page's end: cost follows the page, not the number of matches.
    ``known``: the row ids the driver (narrowed) matches as a JSON array, already read by
    the caller from ``probe``; the page then reads them from a parameter instead of
    finding them again. ``lookup``: resolves token and string criteria to term ids first
    (``Renderer.lookup``); without it they stay sub-queries (a plan shown without a store).
    """
    r = sql_render.Renderer(lookup=lookup)
    probe: SQL | None = None
    probe_is_driver = False
    where: list[str] = [f"r.{sql_render.CURRENT}"]
    args: list[object] = []
    single = query.types[0] if len(query.types) == 1 else None
    if single is not None:
        where.append("r.type = ?")  # "+r.type" once a driver is known (below)
        args.append(single)
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
        if single is not None and not ordered:
            driver, terms = sql_render.split_driver(terms)
        if driver is not None and single is not None:
            sub = r.ids(driver, single)
            if sub is None:
                terms.append(driver)
            else:
                if not isinstance(driver, Has):
                    # Index-only terms filter the driver's ids before any row is read.
                    sub = r.narrow(sub, [t for t in terms if sql_render.seq_only(t)], single)
                    terms = [t for t in terms if not sql_render.seq_only(t)]
                # Drive by row id from the term's index range; the unary plus keeps SQLite
                # from scanning the type's resources instead (it has no statistics).
                where[1] = "+r.type = ?"
                if known is not None:
                    where.append("r.seq IN (SELECT value FROM json_each(?))")
                    args.append(known)
                    known = None  # applied
                else:
                    where.append(f"r.seq IN ({sub[0]})")
                    args.extend(sub[1])
                if not query.sort and isinstance(driver, Has):
                    # _has: what may be large is the referrers' match, not the result.
                    probe = r.ids_any(driver.expr, driver.source_type)
                elif not query.sort or (walkable(query) and not terms):
                    probe, probe_is_driver = sub, True
        for term in terms:
            sql, a = r.cond(term, "r", single)
            where.append(sql)
            args.extend(a)
    if known is not None:  # candidates of a walk, with no driver to stand in for
        if single is not None:
            where[1] = "+r.type = ?"
        where.append("r.seq IN (SELECT value FROM json_each(?))")
        args.append(known)
    keys = [(r.sort_expr(k), k.descending) for k in query.sort]
    keys += [("r.type", False), ("r.id", False)]
    names = [f"k{i}" for i in range(len(keys))]
    select = ", ".join(f"{expr} AS {name}" for (expr, _), name in zip(keys, names, strict=True))
    condition = " AND ".join(where)
    inner = f"SELECT {select}, r.seq AS row FROM resource_versions r WHERE {condition}"
    count_sql = (
        (f"SELECT count(*) FROM resource_versions r WHERE {condition}", list(args))
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
    return PageSQL(text, outer_args, count_sql, probe, probe_is_driver)


def walkable(query: SearchQuery) -> bool:
    """Whether the page's first sort key can be read from its date index in order
    (``walk``): one type, a date key, a first or next page (a previous page walks the
    other way, where a resource's first row is not its key)."""
    return (
        len(query.types) == 1
        and bool(query.sort)
        and query.sort[0].kind == "date"
        and query.before is None
    )


def plan_page(
    c: sqlite3.Connection, query: SearchQuery, lookup: sql_render.TermLookup | None = None
) -> tuple[PageSQL, bool]:
    """The page SQL to run for ``query`` on ``c``, and whether to try ``walk`` first.

    When the page could be read in index order (no ``_sort``, or a date ``_sort`` whose
    terms are index probes), the driver's first ``ORDERED_SCAN_FROM`` ids are read: that
    many or more, the ordered plan (the ``(type, id)`` walk, or for a date sort ``walk``
    then this plan); fewer, they are every match and the page is handed them (``known``)
    rather than finding them again. Token and string criteria are resolved to term ids
    first. Run it inside the transaction of the page: ids and terms of one snapshot."""
    lookup = lookup or term_lookup(c)
    page = render_search(query, lookup=lookup)
    if page.probe is None:
        # No driver to count (no criteria): a date sort can still be walked.
        return page, query.where is None and walkable(query)
    sql, args = page.probe
    if not page.probe_is_driver:  # _has: only how many referrers match matters
        capped = f"SELECT count(*) FROM (SELECT 1 FROM ({sql}) LIMIT ?)"
        found = c.execute(capped, [*args, ORDERED_SCAN_FROM]).fetchone()[0]
        if found >= ORDERED_SCAN_FROM:
            return render_search(query, ordered=True, lookup=lookup), False
        return page, False
    # Counted and gathered in SQLite (2,000 ids cost 0.07 ms so, 0.4 ms as Python rows).
    found, ids = c.execute(
        f"WITH p(seq) AS (SELECT * FROM ({sql}) LIMIT ?)"
        " SELECT count(*), json_group_array(seq) FROM p",
        [*args, ORDERED_SCAN_FROM],
    ).fetchone()
    if found < ORDERED_SCAN_FROM:
        return render_search(query, known=ids, lookup=lookup), False
    if query.sort:
        return page, True
    return render_search(query, ordered=True, lookup=lookup), False


def term_lookup(c: sqlite3.Connection) -> sql_render.TermLookup:
    """``Renderer.lookup`` on ``c``, each criterion looked up once per page."""
    resolved: dict[tuple[str, tuple[Any, ...]], list[int]] = {}

    def lookup(sql: str, args: list[Any]) -> list[int]:
        key = (sql, tuple(args))
        if key not in resolved:
            resolved[key] = [row[0] for row in c.execute(sql, args)]
        return resolved[key]

    return lookup


# Index rows a date-sorted page may walk before it gives up for the full sort: a give-up
# costs ~1.3 ms (the set of matches built, 4,000 rows probed) on top of the full sort.
WALK_BUDGET = 4_000


def walk(c: sqlite3.Connection, query: SearchQuery, matches: SQL | None) -> str | None:
    """The candidates of a date-sorted page (a JSON array of row ids), read from the
    sort key's date index in key order, or ``None`` (not found within ``WALK_BUDGET``).

    ``matches``: ``SELECT seq`` of every match (the narrowed driver; ``None``: every
    resource of the type), built once by SQLite as an in-memory set, which each walked
    index row probes (0.1 us, against ~3 us for a probe of the index tables).

    A resource's key is its highest ``hi`` (``_sort=-date``) or lowest ``lo``: walking
    ``sp_date_hi`` downwards (``sp_date_lo`` upwards), the first row of each matching
    resource carries its key. The walk stops once ``count + 1`` resources are found
    and every resource tied with the last one: every match whose key would put it on
    the page is then a candidate, and the page's own SQL over the candidates orders
    them exactly as the full sort would (ties by type and id). If that SQL finds fewer
    than ``count + 1`` (a next page's walk also meets rows of resources whose key lies
    before the cursor), the caller sorts every match instead."""
    key = query.sort[0]
    column, index, order = (
        ("hi", "sp_date_hi", "DESC") if key.descending else ("lo", "sp_date_lo", "ASC")
    )
    head: list[object] = [query.types[0], key.param]
    bound = ""
    if query.after is not None:
        start = query.after[0]
        if not isinstance(start, int):  # the cursor is among resources without the key
            return None
        bound = f" AND s.{column} {'<=' if key.descending else '>='} ?"
        head.append(start)
    # The walk's far end: the key WALK_BUDGET index rows on (a fixed range, no probes).
    far = (
        f"SELECT s.{column} FROM sp_date s INDEXED BY {index}"
        f" WHERE s.type = ? AND s.param = ?{bound} ORDER BY s.{column} {order} LIMIT 1 OFFSET ?"
    )
    edge = "-1e999" if key.descending else "1e999"
    within, args = "", [*head, *head, WALK_BUDGET]
    if matches is not None:
        within = f" AND s.seq IN ({matches[0]})"
        args += matches[1]
    sql = (
        f"SELECT s.seq, s.{column} FROM sp_date s INDEXED BY {index}"
        f" WHERE s.type = ? AND s.param = ?{bound}"
        f" AND s.{column} {'>=' if key.descending else '<='} COALESCE(({far}), {edge})"
        f"{within} ORDER BY s.{column} {order}"
    )
    found: dict[int, None] = {}
    cut = None
    rows = c.execute(sql, args)
    try:
        for seq, value in rows:
            if cut is not None and value != cut:
                break
            found[seq] = None
            if cut is None and len(found) > query.count:
                cut = value
    finally:
        rows.close()
    if cut is None:
        return None
    return "[" + ",".join(map(str, found)) + "]"


def page_rows(c: sqlite3.Connection, query: SearchQuery) -> tuple[list[Any], SQL | None]:
    """The rows of ``query``'s page (``count + 1`` at most: the last tells "more") and
    the SQL of its total, if asked. Run inside one read transaction."""
    lookup = term_lookup(c)
    page, try_walk = plan_page(c, query, lookup)
    if try_walk:
        candidates = walk(c, query, page.probe)
        if candidates is not None:
            narrowed = render_search(query, known=candidates, lookup=lookup)
            rows = c.execute(narrowed.text, narrowed.args).fetchall()
            if len(rows) > query.count:
                return rows, page.total_sql  # the total counts every match, not candidates
    return c.execute(page.text, page.args).fetchall(), page.total_sql


def render_include(spec: IncludeSpec, rtype: str, ids: list[str]) -> SQL | None:
    """``SELECT seq`` of the current versions ``spec`` reaches from the ``rtype``
    resources ``ids`` (``None``: nothing can match); the caller appends ``LIMIT ?``.

    The row ids come straight from the index (a ``_revinclude``'s referrers are the
    owners of the ``sp_ref`` rows, an ``_include``'s targets one look-up in the current
    ``(type, id)`` index away), so each included resource costs one row read, not three
    (an ``_revinclude`` of a patient's 650 Encounters read them three times over)."""
    marks = ",".join("?" * len(ids))
    if spec.reverse:
        if spec.target_type is not None and spec.target_type != rtype:
            return None
        sql = (
            "SELECT a.seq FROM sp_ref a INDEXED BY sp_ref_value"
            f" WHERE a.target_id IN ({marks}) AND a.target_type = ?"
        )
        args: list[object] = [*ids, rtype]
        if spec.source_type != "*":  # _revinclude=*: any source type
            sql += " AND a.type = ?"
            args.append(spec.source_type)
        if spec.param is not None:
            sql += " AND a.param = ?"
            args.append(spec.param)
        return sql, args
    if spec.source_type not in ("*", rtype):
        return None
    sql = (
        "SELECT t.seq FROM resource_versions v"
        " JOIN sp_ref a INDEXED BY sp_ref_owner ON a.seq = v.seq"
        " JOIN resource_versions t INDEXED BY resource_versions_current"
        " ON t.type = a.target_type AND t.id = a.target_id"
        " AND t.is_current = 1 AND t.deleted = 0"
        f" WHERE v.type = ? AND v.id IN ({marks}) AND v.is_current = 1 AND v.deleted = 0"
        " AND a.target_id IS NOT NULL"
    )
    args = [rtype, *ids]
    if spec.param is not None:
        sql += " AND a.param = ?"
        args.append(spec.param)
    if spec.target_type is not None:
        sql += " AND a.target_type = ?"
        args.append(spec.target_type)
    return sql, args
