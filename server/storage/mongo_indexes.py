"""The indexes ``MongoStore`` creates, declared once: created from this list at open,
and held against every query the renderer emits by ``mongo_plan`` and its test."""

from __future__ import annotations

from typing import Any

from pymongo.errors import OperationFailure

from server.search.mongo_index import INDEXES as SEARCH_INDEXES

# (name, key fields, unique) on ``versions``, every backend. Docs: docs/mongodb.md#indexes.
CORE_INDEXES: list[tuple[str, list[str], bool]] = [
    ("one_successor_per_version", ["type", "id", "prev"], True),  # optimistic concurrency
    ("resource_versions", ["type", "id", "version"], False),  # read, instance history
    ("history", ["lu", "_id"], False),  # system history, keyset paging
    ("type_history", ["type", "lu", "_id"], False),
    ("current", ["type", "cur", "deleted", "id"], False),  # current resources by id
]

# Every index a query may use: (name, key fields). The search indexes exist on MongoDB
# only (see ``create_indexes``).
INDEX_SET: list[tuple[str, list[str]]] = [
    *[(name, fields) for name, fields, _ in CORE_INDEXES],
    *[(name, [f for f, _ in keys]) for name, keys, _ in SEARCH_INDEXES],
]


async def create_indexes(versions: Any, transactions: Any, ferretdb: bool) -> None:
    """Create the declared indexes idempotently (and drop what FerretDB must not have)."""
    for name, fields, unique in CORE_INDEXES:
        await versions.create_index([(f, 1) for f in fields], unique=unique, name=name)
    # Search indexes (server.search.mongo_index), on MongoDB only. FerretDB 1.x accepts a
    # wildcard index and then fails every insert, and indexes an array as one value
    # rather than one entry per element: on its PostgreSQL backend a resource with many
    # search keys then exceeds the 8 KiB index row and cannot be stored at all (its
    # SQLite backend uses no secondary index anyway).
    if ferretdb:
        names = {ix["name"] async for ix in await versions.list_indexes()}
        for name, _, _ in SEARCH_INDEXES:
            if name in names:  # created by an earlier release
                await versions.drop_index(name)
    for name, keys, wildcard in [] if ferretdb else SEARCH_INDEXES:
        try:
            await versions.create_index(keys, name=name)
        except OperationFailure:
            if not wildcard:
                raise  # wildcard indexes need MongoDB >= 4.2
    # Commits in flight of the staged scheme (recovery, cleanup).
    await versions.create_index([("txn", 1)], sparse=True, name="staged")
    await versions.create_index([("sup", 1)], sparse=True, name="superseding")
    await transactions.create_index([("done_at", 1)], sparse=True, name="finished")
