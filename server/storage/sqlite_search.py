"""The SQL of one search page, its total and ``_include``/``_revinclude`` on SQLite.

Conditions come from ``server.search.sql_render``; this module puts them into the page
query: current versions of the asked types, driven by the most selective term,
ordered by the sort keys then type and id (the keyset the paging positions carry).
"""

from __future__ import annotations

from typing import TypeVar

from server.search import sql_render
from server.search.expr import And, Expr
from server.spec.resources import resource_types
from server.storage.port import IncludeSpec, SearchQuery

SQL = tuple[str, list[object]]
T = TypeVar("T")


def chunks(items: list[T], size: int) -> list[list[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# A driver matching at least this many resources is not worth materialising and sorting
# for a page in id order: walking the type's (type, id) index and probing is cheaper.
ORDERED_SCAN_FROM = 2000


def render_search(
    query: SearchQuery, ordered: bool = False
) -> tuple[str, list[object], SQL | None, SQL | None]:
    """SQL of one page (``SELECT k..., seq``: sort keys, type, id, then the row), of the
    total count if asked, and of the driver's matches when the page could instead be read
    in index order (``probe``: no ``_sort``; run ``SELECT count(*)`` over it, capped at
    ``ORDERED_SCAN_FROM``, and render again with ``ordered=True`` when it reaches that).

    ``ordered``: no driver; SQLite walks ``(type, id)`` in order, checking every term,
    and stops at the page's end: cost follows the page, not the number of matches."""
    r = sql_render.Renderer()
    probe: SQL | None = None
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
                # Drive by row id from the term's index range; the unary plus keeps SQLite
                # from scanning the type's resources instead (it has no statistics).
                where[1] = "+r.type = ?"
                where.append(f"r.seq IN ({sub[0]})")
                args.extend(sub[1])
                if not query.sort:
                    probe = sub
        for term in terms:
            sql, a = r.cond(term, "r", single)
            where.append(sql)
            args.extend(a)
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
    return text, outer_args, count_sql, probe


def render_include(spec: IncludeSpec, rtype: str, ids: list[str]) -> SQL | None:
    """``SELECT type, id`` of what ``spec`` reaches from the ``rtype`` resources ``ids``
    (``None``: nothing can match); the caller appends ``LIMIT ?``."""
    marks = ",".join("?" * len(ids))
    if spec.reverse:
        if spec.target_type is not None and spec.target_type != rtype:
            return None
        sql = (
            "SELECT v.type, v.id FROM sp_ref a INDEXED BY sp_ref_value"
            " JOIN resource_versions v ON v.seq = a.seq"
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
        "SELECT a.target_type, a.target_id FROM resource_versions v"
        " JOIN sp_ref a INDEXED BY sp_ref_owner ON a.seq = v.seq"
        f" WHERE v.type = ? AND v.id IN ({marks}) AND v.{sql_render.CURRENT}"
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
