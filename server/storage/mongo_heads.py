"""``heads``: one tiny document per resource ever created, so that "no such resource" is
cheap on FerretDB.

FerretDB 1.24 on PostgreSQL turns every ``find`` into a sequential scan of the
collection's table: it pushes top-level equalities down as ``_jsonb->'f' @> value``,
which its B-tree indexes (``(_jsonb->'f')``) cannot serve, and it never pushes down a
range, a ``$in``, a sort or a limit (docs/mongodb.md#ferretdb-on-postgresql). A scan of
``versions`` reads every stored body out of PostgreSQL's TOAST table (about 16 µs a
row), so the look-up a PUT makes before writing a resource costs milliseconds per
thousand stored resources. Most of those look-ups, when a feed loads new data, are for
resources that do not exist yet; a scan of ``heads`` (documents of a few dozen bytes,
never TOASTed) answers them about forty times faster.

The invariant that makes a miss authoritative: a head is inserted *before* the first
version of its resource is staged, and never removed. So a resource without a head has
no version, visible or staged; a head without a resource (an aborted create, a deleted
resource) only sends the reader on to the normal look-up. ``open()`` adds the head of
every resource whose first version (``prev: 0``) has none, so data written by a release
or a server that kept no heads is covered (one scan at start-up).

Only on FerretDB: on MongoDB the version look-up is an index seek already, and a head
would cost every create a write and every read a round trip. On MongoDB the
collection is neither read nor written; a database moved back to FerretDB gets its
missing heads at the next ``open()``.
"""

from __future__ import annotations

from typing import Any

from pymongo.errors import BulkWriteError, DuplicateKeyError

BATCH = 500


def head_id(resource_type: str, resource_id: str) -> str:
    return f"{resource_type}/{resource_id}"


class Heads:
    """The ``heads`` collection, or nothing where it does not pay (``enabled`` false)."""

    def __init__(self, heads: Any, versions: Any, enabled: bool) -> None:
        self._heads = heads
        self._versions = versions
        self.enabled = enabled

    async def complete(self) -> int:
        """Insert the missing head of every stored resource; how many were missing."""
        if not self.enabled:
            return 0
        known = {doc["_id"] async for doc in self._heads.find({}, {"_id": 1})}
        missing: dict[str, None] = {}
        async for doc in self._versions.find({"prev": 0}, {"type": 1, "id": 1}):
            key = head_id(doc["type"], doc["id"])
            if key not in known:
                missing[key] = None
        await self._insert(list(missing))
        return len(missing)

    async def claim(self, resource_type: str, resource_id: str) -> None:
        """Record that ``resource_type/resource_id`` may have versions from now on (call
        before staging its first version)."""
        if not self.enabled:
            return
        try:
            await self._heads.insert_one({"_id": head_id(resource_type, resource_id)})
        except DuplicateKeyError:
            pass  # created before (possibly deleted since): the head stays

    async def claim_all(self, resources: list[tuple[str, str]]) -> None:
        """``claim`` each of ``resources`` (several round trips only for big batches)."""
        if not self.enabled or not resources:
            return
        await self._insert(list(dict.fromkeys(head_id(t, i) for t, i in resources)))

    async def _insert(self, keys: list[str]) -> None:
        for start in range(0, len(keys), BATCH):
            batch = [{"_id": k} for k in keys[start : start + BATCH]]
            try:
                await self._heads.insert_many(batch, ordered=False)
            except BulkWriteError as exc:  # heads that exist already: they stay
                if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                    raise

    async def may_exist(self, resource_type: str, resource_id: str) -> bool:
        """False only if the resource certainly has no version."""
        if not self.enabled:
            return True
        found = await self._heads.find_one({"_id": head_id(resource_type, resource_id)})
        return found is not None
