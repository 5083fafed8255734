"""Render a search expression tree as a MongoDB filter document, and run it.

The filter uses only operators MongoDB and FerretDB share: equality, ``$in``/``$nin``,
scalar ``$elemMatch`` ranges and ``$regex`` on the ``idx`` arrays of
``server.search.mongo_index`` (``$and``/``$or``/``$nor`` to combine). Chains and
``_has`` run as index-backed sub-queries first (``resolve_joins``: FerretDB has no
``$lookup``), their results becoming ``$in`` lists; ``_include`` likewise.

``MongoStore`` calls ``mongo_search`` and ``mongo_include`` with its versions
collection, the filter of possibly-current documents, a predicate deciding whether a
document is the visible current version (staged commits) and its document→version
mapper; everything else is here.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
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
    Range,
    Reference,
    RefValue,
    String,
    Token,
    TokenValue,
    Uri,
)
from server.search.mongo_index import SEP, enc, field_name, key
from server.search.registry import registry
from server.search.sql_render import uri_above
from server.spec.resources import resource_types
from server.storage.port import (
    IncludeSpec,
    SearchPage,
    SearchQuery,
    SearchTooCostly,
    SortKey,
    StoredVersion,
)

Doc = dict[str, Any]
NOTHING: Doc = {"_id": {"$in": []}}
MAX_JOIN_IDS = 10_000  # ids a chain / _has sub-query may hand to the outer query


class TooCostly(SearchTooCostly):
    """A chain or _has sub-query matched more than ``MAX_JOIN_IDS`` resources."""


def _token_key(prefix: str, v: TokenValue) -> str:
    if v.code is None:
        return key("t", prefix, "s", v.system)
    if v.system is not None:
        return key("t", prefix, "sc", v.system, v.code)
    if v.system_given:
        return key("t", prefix, "nc", v.code)
    return key("t", prefix, "c", v.code)


def _range(field: str, lo: str | None, lo_incl: bool, hi: str | None, hi_incl: bool) -> Doc:
    """``lo <(=) value <(=) hi`` on one element of ``field`` (either bound may be open)."""
    ops: Doc = {}
    if lo is not None:
        ops["$gte" if lo_incl else "$gt"] = lo
    if hi is not None:
        ops["$lte" if hi_incl else "$lt"] = hi
    if len(ops) == 1:
        return {field: ops}  # one operator: exact on every server
    return {field: {"$elemMatch": ops}}


def _number_range(field: str, r: Range) -> Doc:
    """A number/quantity criterion on ``field`` (an ``idx.n.<f>`` array of ``enc(v)``)."""
    from server.search.parse import number_bounds

    lo, lo_incl, hi, hi_incl, negate = number_bounds(r)
    low = enc(lo) if lo != float("-inf") else None
    high = enc(hi) if hi != float("inf") else None
    if low is None and high is None:
        return {field: {"$exists": True}}
    cond = _range(field, low, lo_incl, high, hi_incl)
    return {"$nor": [cond]} if negate else cond


def _date_cond(name: str, r: Range) -> Doc:
    """Resource ranges (``idx.dl.<f>``/``idx.dh.<f>``) against the search range ``r``."""
    slo, shi = enc(int(r.lo)), enc(int(r.hi))
    lo_f, hi_f = f"idx.dl.{name}", f"idx.dh.{name}"
    p = r.prefix
    if p in ("eq", "ne"):
        eq: Doc = {"$and": [{lo_f: {"$gte": slo}}, {hi_f: {"$lte": shi}}]}
        return {"$nor": [eq]} if p == "ne" else eq
    if p == "gt":
        return {hi_f: {"$gt": shi}}
    if p == "lt":
        return {lo_f: {"$lt": slo}}
    if p == "ge":
        return {hi_f: {"$gte": slo}}
    if p == "le":
        return {lo_f: {"$lte": shi}}
    if p == "sa":
        return {lo_f: {"$gt": shi}}
    if p == "eb":
        return {hi_f: {"$lt": slo}}
    return {"$and": [{lo_f: {"$lte": shi}}, {hi_f: {"$gte": slo}}]}  # ap


def _or(parts: list[Doc]) -> Doc:
    if not parts:
        return NOTHING
    return parts[0] if len(parts) == 1 else {"$or": parts}


def _quantity(param: str, r: Range, head: str | None = None) -> Doc:
    quals = (head,) if head is not None else ()
    if r.code is not None and r.system is not None:
        name = field_name(param, *quals, r.system, r.code)
    elif r.code is not None:
        name = field_name(param, *quals, r.code)
    else:
        name = field_name(param, *quals)
    return _number_range(f"idx.n.{name}", r)


def _prefix_regex(field: str, prefix: str) -> Doc:
    return {field: {"$regex": "^" + re.escape(prefix)}}


def _composite(e: Composite) -> Doc:
    parts: list[Doc] = []
    for value in e.values:
        first, second = value.parts[0], value.parts[-1]
        if not isinstance(first, Token) or len(value.parts) != 2:
            raise TypeError(f"composite {e.param}: MongoDB supports token-first pairs only")
        alternatives: list[Doc] = []
        for tv in first.values:
            head = _token_key("", tv)
            if isinstance(second, Quantities):
                alternatives += [_quantity(e.param, r, head) for r in second.values]
            elif isinstance(second, Numbers):
                name = field_name(e.param, head)
                alternatives += [_number_range(f"idx.n.{name}", r) for r in second.values]
            elif isinstance(second, Dates):
                alternatives += [_date_cond(field_name(e.param, head), r) for r in second.values]
            elif isinstance(second, Token):
                keys = [key("cp", e.param, head, _token_key("", v)) for v in second.values]
                alternatives.append({"idx.k": {"$in": keys}})
            elif isinstance(second, String):
                alternatives += [
                    _prefix_regex("idx.s", key(field_name(e.param, head), text))
                    for text in second.values
                ]
            else:
                raise TypeError(f"composite {e.param}: unsupported component")
        parts.append(_or(alternatives))
    return _or(parts)


def _present(param: str, cond: Doc) -> Doc:
    """``ne`` matches resources that have a value, none of them equal (as on SQLite)."""
    return {"$and": [{"idx.k": key("h", param)}, cond]}


def render_filter(e: Expr | None) -> Doc:
    """The filter document of ``e`` (chains and _has must have been resolved)."""
    if e is None:
        return {}
    if isinstance(e, Token):
        return {"idx.k": {"$in": [_token_key(e.param, v) for v in e.values]}}
    if isinstance(e, Not) and isinstance(e.expr, Token):
        return {"idx.k": {"$nin": [_token_key(e.expr.param, v) for v in e.expr.values]}}
    if isinstance(e, String):
        if e.mode == "exact":
            return {"idx.k": {"$in": [key("x", e.param, v) for v in e.values]}}
        if e.mode == "contains":
            return _or(
                [
                    {"idx.s": {"$regex": "^" + re.escape(e.param + SEP) + ".*" + re.escape(v)}}
                    for v in e.values
                ]
            )
        return _or([_prefix_regex("idx.s", key(e.param, v)) for v in e.values])
    if isinstance(e, Reference):
        keys = []
        for v in e.values:
            if v.url is not None:
                keys.append(key("u", e.param, v.url))
            elif v.type is not None:
                keys.append(key("r", e.param, f"{v.type}/{v.id}"))
            else:
                keys.append(key("r", e.param, "*", v.id))
        return {"idx.k": {"$in": keys}}
    if isinstance(e, Dates):
        return _or(
            [
                _present(e.param, _date_cond(e.param, r))
                if r.prefix == "ne"
                else _date_cond(e.param, r)
                for r in e.values
            ]
        )
    if isinstance(e, Numbers | Quantities):
        conds: list[Doc] = []
        for r in e.values:
            cond = (
                _quantity(e.param, r)
                if isinstance(e, Quantities)
                else _number_range(f"idx.n.{e.param}", r)
            )
            conds.append(_present(e.param, cond) if r.prefix == "ne" else cond)
        return _or(conds)
    if isinstance(e, Uri):
        if e.mode == "eq":
            return {"idx.k": {"$in": [key("u", e.param, v) for v in e.values]}}
        if e.mode == "above":
            return {
                "idx.k": {"$in": [key("u", e.param, u) for v in e.values for u in uri_above(v)]}
            }
        return _or([_prefix_regex("idx.s", key(e.param, v)) for v in e.values])
    if isinstance(e, Composite):
        return _composite(e)
    if isinstance(e, Missing):
        presence = key("h", e.param)
        return {"idx.k": {"$ne": presence}} if e.missing else {"idx.k": presence}
    if isinstance(e, Ids):
        return {"id": {"$in": list(e.ids)}}
    if isinstance(e, OfType):
        return {"type": {"$in": list(e.types)}}
    if isinstance(e, Not):
        return {"$nor": [render_filter(e.expr)]}
    if isinstance(e, And):
        parts = [render_filter(x) for x in e.exprs]
        parts = [p for p in parts if p]
        return {} if not parts else parts[0] if len(parts) == 1 else {"$and": parts}
    if isinstance(e, Or):
        return _or([render_filter(x) for x in e.exprs])
    raise TypeError(f"resolve chains before rendering: {e!r}")


# -- execution -------------------------------------------------------------------------

IsCurrent = Callable[[Doc], Awaitable[bool]]
ToVersion = Callable[[Doc], StoredVersion]
_META = {"type": 1, "id": 1, "version": 1, "lu": 1, "deleted": 1, "cur": 1, "txn": 1, "sup": 1}


async def _current_docs(
    coll: Any, filt: Doc, is_current: IsCurrent, projection: Doc, limit: int, sort: Any = None
) -> list[Doc]:
    docs: list[Doc] = []
    seen: set[tuple[str, str]] = set()
    cursor = coll.find(filt, projection, sort=sort)
    try:
        async for doc in cursor:
            k = (doc["type"], doc["id"])
            if k in seen or not await is_current(doc):
                continue
            seen.add(k)
            docs.append(doc)
            if len(docs) >= limit:
                break
    finally:
        await cursor.close()
    return docs


async def resolve_joins(
    e: Expr | None, coll: Any, base: Doc, is_current: IsCurrent, outer_type: str | None = None
) -> Expr | None:
    """Replace ``Chain`` and ``Has`` by ``Reference``/``Ids`` leaves, running sub-queries."""
    if e is None:
        return None
    if isinstance(e, And | Or):
        resolved = [await resolve_joins(x, coll, base, is_current, outer_type) for x in e.exprs]
        kept = tuple(x for x in resolved if x is not None)
        return And(kept) if isinstance(e, And) else Or(kept)
    if isinstance(e, Not):
        inner = await resolve_joins(e.expr, coll, base, is_current, outer_type)
        return Not(inner) if inner is not None else None
    if isinstance(e, Chain):
        inner = await resolve_joins(e.expr, coll, base, is_current, e.target_type)
        filt = scoped(base, e.target_type, render_filter(inner))
        docs = await _current_docs(coll, filt, is_current, {**_META}, MAX_JOIN_IDS + 1)
        if len(docs) > MAX_JOIN_IDS:
            raise TooCostly(f"chain {e.param}.… matches more than {MAX_JOIN_IDS} {e.target_type}")
        return Reference(e.param, tuple(RefValue(e.target_type, d["id"]) for d in docs))
    if isinstance(e, Has):
        inner = await resolve_joins(e.expr, coll, base, is_current, e.source_type)
        filt = scoped(base, e.source_type, render_filter(inner))
        docs = await _current_docs(coll, filt, is_current, {**_META, "idx.k": 1}, MAX_JOIN_IDS + 1)
        if len(docs) > MAX_JOIN_IDS:
            raise TooCostly(f"_has:{e.source_type} matches more than {MAX_JOIN_IDS} resources")
        ids: dict[str, None] = {}
        head = key("r", e.param, "")
        for d in docs:
            for k in (d.get("idx") or {}).get("k", ()):
                if k.startswith(head) and "/" in k[len(head) :]:
                    rtype, rid = k[len(head) :].split("/", 1)
                    if outer_type is None or rtype == outer_type:
                        ids[rid] = None
        return Ids(tuple(ids))
    return e


def sort_spec(sort: Sequence[SortKey]) -> list[tuple[str, int, bool]]:
    """(field, direction, descending) for each key, then type and id ascending."""
    fields: list[tuple[str, int, bool]] = []
    for k in sort:
        if k.kind == "id":
            fields.append(("id", -1 if k.descending else 1, k.descending))
        elif k.kind == "lastUpdated":
            fields.append(("lu", -1 if k.descending else 1, k.descending))
        else:
            field = f"idx.{'od' if k.descending else 'oa'}.{k.param}"
            fields.append((field, -1 if k.descending else 1, k.descending))
    return [*fields, ("type", 1, False), ("id", 1, False)]


def _after(field: str, value: Any, descending: bool) -> Doc:
    """Documents strictly after ``value`` on ``field`` (missing sorts first, as MongoDB does)."""
    if not descending:
        return {field: {"$ne": None}} if value is None else {field: {"$gt": value}}
    if value is None:
        return NOTHING
    return {"$or": [{field: {"$lt": value}}, {field: None}]}


def keyset_filter(
    spec: list[tuple[str, int, bool]], position: Sequence[Any], backwards: bool
) -> Doc:
    ors: list[Doc] = []
    for i, (field, _, desc) in enumerate(spec):
        parts = [{spec[j][0]: position[j]} for j in range(i)]
        parts.append(_after(field, position[i], desc != backwards))
        ors.append({"$and": parts} if len(parts) > 1 else parts[0])
    return {"$or": ors}


def _value(doc: Doc, path: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def scoped(base: Doc, types: Any, *conditions: Doc) -> Doc:
    """``type`` and ``base`` as top-level equalities, every other condition under ``$and``.

    The same filter as ``{"$and": [base, {"type": ...}, *conditions]}`` on any server, but
    FerretDB (1.24, PostgreSQL backend) pushes only top-level equalities down into SQL:
    inside a ``$and`` nothing is, and it then reads and decodes the whole collection for
    every query. ``type`` comes first, the most selective of the three. Conditions are
    never merged into the top level (a condition may constrain ``type`` or ``id`` too)."""
    filt: Doc = {"type": types, **base}
    rest = [c for c in conditions if c]
    if rest:
        filt["$and"] = rest
    return filt


def search_filter(query: SearchQuery, where: Expr | None, base: Doc) -> Doc:
    """The filter of every match of ``query`` (``where``: its criteria, joins resolved)."""
    if len(query.types) == 1:
        types: Any = query.types[0]
    elif query.types:
        types = {"$in": list(query.types)}
    else:  # every type means every FHIR type: internal records never match a search
        types = {"$in": sorted(resource_types())}
    return scoped(base, types, render_filter(where))


def _with(filt: Doc, condition: Doc) -> Doc:
    """``filt`` and ``condition`` (kept under ``$and``, top-level equalities untouched)."""
    out = dict(filt)
    out["$and"] = [*out.get("$and", []), condition]
    return out


async def mongo_search(
    coll: Any, query: SearchQuery, *, base: Doc, is_current: IsCurrent, to_version: ToVersion
) -> SearchPage:
    outer = query.types[0] if len(query.types) == 1 else None
    where = await resolve_joins(query.where, coll, base, is_current, outer)
    matches = search_filter(query, where, base)
    spec = sort_spec(query.sort)
    backwards = query.before is not None
    position = query.before if backwards else query.after
    page = matches
    if position is not None:
        page = _with(matches, keyset_filter(spec, position, backwards))
    order = [(f, -d if backwards else d) for f, d, _ in spec]
    projection = {**_META, "body": 1, **{f: 1 for f, _, _ in spec}}
    docs = await _current_docs(coll, page, is_current, projection, query.count + 1, order)
    more = len(docs) > query.count
    docs = docs[: query.count]
    if backwards:
        docs.reverse()
    positions = [tuple(_value(d, f) for f, _, _ in spec) for d in docs]
    total = await coll.count_documents(matches) if query.total else None
    return SearchPage([to_version(d) for d in docs], positions, more, total)


def _reference_params(source_type: str) -> list[str]:
    """Codes of the reference parameters of ``source_type`` (``*``: of every type)."""
    reg = registry()
    types = list(reg.by_type) if source_type == "*" else [source_type]
    codes = {p.code for t in types for p in reg.params(t).values() if p.type == "reference"}
    return sorted(codes)


async def mongo_include(
    coll: Any,
    spec: IncludeSpec,
    resources: Sequence[tuple[str, str]],
    limit: int,
    *,
    base: Doc,
    is_current: IsCurrent,
    to_version: ToVersion,
) -> list[StoredVersion]:
    targets: dict[tuple[str, str], None] = {}
    by_type: dict[str, list[str]] = {}
    for rtype, rid in resources:
        by_type.setdefault(rtype, []).append(rid)
    if spec.reverse:
        found: list[Doc] = []
        for rtype, ids in by_type.items():
            if spec.target_type is not None and spec.target_type != rtype:
                continue
            params = [spec.param] if spec.param else _reference_params(spec.source_type)
            keys = [key("r", p, f"{rtype}/{rid}") for p in params for rid in ids]
            by_key: Doc = {"idx.k": {"$in": keys}}
            if spec.source_type == "*":
                filt = {**base, "$and": [by_key]}
            else:
                filt = scoped(base, spec.source_type, by_key)
            found += await _current_docs(
                coll, filt, is_current, {**_META, "body": 1}, limit - len(found)
            )
            if len(found) >= limit:
                break
        return [to_version(d) for d in found[:limit]]
    for rtype, ids in by_type.items():
        if spec.source_type not in ("*", rtype):
            continue
        filt = scoped(base, rtype, {"id": {"$in": ids}})
        docs = await _current_docs(coll, filt, is_current, {**_META, "idx.k": 1}, len(ids))
        head = key("r", spec.param, "") if spec.param else None
        for d in docs:
            for k in (d.get("idx") or {}).get("k", ()):
                if not k.startswith("r" + SEP):
                    continue
                if head is not None and not k.startswith(head):
                    continue
                ref = k.rsplit(SEP, 1)[1]
                if "/" not in ref:
                    continue
                ttype, tid = ref.split("/", 1)
                if spec.target_type is None or spec.target_type == ttype:
                    targets[(ttype, tid)] = None
    out: list[StoredVersion] = []
    wanted: dict[str, list[str]] = {}
    for ttype, tid in list(targets)[:limit]:
        wanted.setdefault(ttype, []).append(tid)
    for ttype, tids in wanted.items():
        filt = scoped(base, ttype, {"id": {"$in": tids}})
        docs = await _current_docs(coll, filt, is_current, {**_META, "body": 1}, len(tids))
        out += [to_version(d) for d in docs]
    return out
