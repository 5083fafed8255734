"""Which declared MongoDB index can serve a filter and sort the search renderer emits.

A static stand-in for the query planner, so that a test can hold every rendered query
against the index set ``MongoStore`` creates (``INDEX_SET``) without a server, and the
explain-plan check on a real MongoDB can say which index it expected. The rules are
MongoDB's own, simplified to the shapes the renderer produces:

* a conjunction is served by an index when the index's first field is constrained by
  an equality, ``$in``, range, ``$elemMatch`` or anchored ``$regex``, and the index
  narrows more than the resource type (``type`` alone is a scan of one type);
* a ``$or`` is served when every branch is (MongoDB unions one index scan per branch);
* ``$nor``, ``$ne`` and ``$nin`` never start an index scan;
* a wildcard index ``a.$**`` serves any single field below ``a``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from server.search.mongo_index import INDEXES as SEARCH_INDEXES

# Every index on ``versions``: (name, key fields). Kept next to ``_create_indexes`` in
# ``mongo.py``; ``tests/storage/test_mongo_indexes.py`` checks the two agree.
INDEX_SET: list[tuple[str, list[str]]] = [
    ("one_successor_per_version", ["type", "id", "prev"]),
    ("resource_versions", ["type", "id", "version"]),
    ("history", ["lu", "_id"]),
    ("type_history", ["type", "lu", "_id"]),
    ("current", ["type", "cur", "deleted", "id"]),
    *[(name, [f for f, _ in keys]) for name, keys, _ in SEARCH_INDEXES],
]
_SARGABLE = {"$in", "$gt", "$gte", "$lt", "$lte", "$elemMatch", "$regex", "$eq", "$all"}
# Fields whose equality narrows no more than "current resources of one type".
_COARSE = {"type", "cur", "deleted"}


def _field_matches(index_field: str, field: str) -> bool:
    if index_field.endswith(".$**"):
        return field.startswith(index_field[: -len("$**")])
    return index_field == field


def _constrained(conjuncts: Sequence[dict[str, Any]]) -> Iterator[str]:
    """Fields an index scan could start from in a conjunction of plain predicates."""
    for c in conjuncts:
        for field, cond in c.items():
            if field.startswith("$"):
                continue
            if not isinstance(cond, dict):
                yield field  # equality
            elif cond.keys() & _SARGABLE:
                if "$regex" in cond and not str(cond["$regex"]).startswith("^"):
                    continue
                if "$in" in cond and not cond["$in"]:
                    continue
                yield field


def _flatten(filt: dict[str, Any]) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """(plain conjuncts, the branch lists of each ``$or``) of a filter's top ``$and``."""
    plain: list[dict[str, Any]] = []
    ors: list[list[dict[str, Any]]] = []
    stack = [filt]
    while stack:
        doc = stack.pop()
        for k, v in doc.items():
            if k == "$and":
                stack.extend(v)
            elif k == "$or":
                ors.append(list(v))
            elif k == "$nor":
                continue
            else:
                plain.append({k: v})
    return plain, ors


def serving_indexes(filt: dict[str, Any]) -> list[str] | None:
    """Names of the indexes that serve ``filt`` (one per ``$or`` branch), or ``None``."""
    plain, ors = _flatten(filt)
    fields = set(_constrained(plain))
    for name, keys in INDEX_SET:
        if not any(_field_matches(keys[0], f) for f in fields):
            continue
        narrowing = [k for k in keys if k not in _COARSE]
        if any(_field_matches(k, f) for k in narrowing for f in fields):
            return [name]
    if ors:
        # A selective $or: every branch, together with the outer conjuncts, has an index.
        for branches in ors:
            names: list[str] = []
            for branch in branches:
                served = serving_indexes({"$and": [*plain, branch]})
                if served is None:
                    names = []
                    break
                names += served
            if names:
                return sorted(set(names))
    return None


def sort_index(fields: Sequence[str]) -> str | None:
    """The index that can return documents in the order of the first sort field."""
    if not fields:
        return None
    first = fields[0]
    for name, keys in INDEX_SET:
        if _field_matches(keys[0], first) or (
            keys[0] == "type" and len(keys) > 1 and _field_matches(keys[1], first)
        ):
            return name
    return None
