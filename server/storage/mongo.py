"""The production store: MongoDB (or any MongoDB wire-protocol server) via PyMongo's asyncio API.

Document model
--------------
``versions`` holds one document per resource version::

    _id      "Patient/123/000000002"   type/id/zero-padded version: unique, sorts by version
    type, id, version
    prev     the version this one replaced (the writer's ``expected_version``, 0 at create)
    lu       last_updated (FHIR instant string, sorts as a string)
    deleted  true for the marker a delete leaves behind
    body     the exact JSON bytes (BSON binary: served without re-encoding), null if deleted
    cur      true on the newest version of a resource only
    idx      search index values, only while ``cur`` and not deleted (``mongo_index``)
    txn      staged by commit ``txn``, invisible until that commit is decided (fallback only)
    started  when ``txn`` staged it (fallback only)
    sup      about to be superseded by commit ``sup`` (fallback only)

``transactions`` holds one small record per decided commit of the fallback scheme:
``{_id: txn, state: "committed" | "aborted", at, done_at}``.

Optimistic concurrency
----------------------
A unique index on ``(type, id, prev)`` is the lock: every write that moves a resource
on from version *e* inserts a document with ``prev = e``, so of all writers that read
version *e* exactly one insert succeeds, the others get a duplicate-key error, which
becomes ``VersionConflict``. A writer also checks that the newest visible version
really is *e* (an expectation from the future must fail too): in a transaction by a
look-up before inserting, in a staged commit after inserting, by marking *e* superseded
with an update conditioned on *e* being current and settled (``_mark_superseded``). The
scheme relies only on an insert being checked against a unique index, which every
MongoDB wire-protocol server does atomically (FerretDB included), never on the atomicity
of conditional updates (only the insert's winner ever marks *e*).

``heads`` (FerretDB only, ``mongo_heads``) holds one tiny document per resource ever
created, so that a read of a resource that does not exist skips the scan of
``versions`` FerretDB makes of every find.

Atomic commits (server transactions, or the staged scheme of a standalone server or
FerretDB) are described in ``server.storage.mongo_staged``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from pymongo import DESCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.errors import DuplicateKeyError, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from server.search.mongo_index import index_document
from server.search.mongo_render import mongo_include, mongo_search
from server.storage.mongo_base import (
    DEFAULT_DATABASE,
    DEFAULT_SERVER_SELECTION_TIMEOUT_MS,
    GC_EVERY_COMMITS,
    Doc,
    SlotTaken,
    decode_cursor,
    encode_cursor,
    one_line,
    redact_url,
    to_version,
    utc_now,
    version_doc_id,
)
from server.storage.mongo_heads import Heads
from server.storage.mongo_indexes import create_indexes
from server.storage.mongo_staged import StagedCommits
from server.storage.port import (
    HistoryPage,
    HistoryQuery,
    IncludeSpec,
    SearchIndex,
    SearchPage,
    SearchQuery,
    StoredVersion,
    StoreUnavailable,
    VersionConflict,
    Write,
)
from server.storage.testhooks import apause_before_commit

__all__ = ["MongoStore", "redact_url", "version_doc_id"]


class MongoStore(StagedCommits):
    """``Store`` on a MongoDB database named by the URL path (default ``billable``)."""

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        options: dict[str, Any] = {"appname": "billable"}
        if "serverselectiontimeoutms" not in self.url.lower():
            options["serverSelectionTimeoutMS"] = DEFAULT_SERVER_SELECTION_TIMEOUT_MS
        try:
            client: AsyncMongoClient[Doc] = AsyncMongoClient(self.url, **options)
        except PyMongoError as exc:
            raise StoreUnavailable(
                f"invalid MongoDB URL {self.info.location}: {one_line(exc)}"
            ) from exc
        try:
            hello = await client.admin.command("hello")
        except PyMongoError as exc:
            await client.close()
            raise StoreUnavailable(
                f"cannot reach MongoDB at {self.info.location}: {one_line(exc)}"
            ) from exc
        self._client = client
        db = client.get_default_database(DEFAULT_DATABASE)
        self._versions_coll = db["versions"]
        self._transactions_coll = db["transactions"]
        self._meta_coll = db["meta"]
        async with self._guard("open"):
            ferretdb = await self._create_indexes()
            self._heads_coll = Heads(db["heads"], self._versions_coll, enabled=ferretdb)
            self._use_transactions = await self._choose_transactions(hello)
            await self._recover()
            await self._heads.complete()
        mode = "transactions" if self._use_transactions else "staged"
        self.info = replace(self.info, atomic_commit=mode)

    @staticmethod
    async def _drop_identifier_index(v: Any) -> None:
        """Remove the identifier-only index of release 0.1.0 (the ``tokens`` index and the
        ``tk`` keys): conditional matching searches the full index (``idx``) instead."""
        names = {ix["name"] async for ix in await v.list_indexes()}
        if "tokens" in names:
            await v.drop_index("tokens")
        await v.update_many({"tk": {"$exists": True}}, {"$unset": {"tk": ""}})

    async def _create_indexes(self) -> bool:
        """Create the declared indexes; true on FerretDB."""
        assert self._client is not None
        build = await self._client.admin.command("buildInfo")
        ferretdb = "ferretdbVersion" in build
        await create_indexes(self._versions, self._transactions, ferretdb)
        await self._drop_identifier_index(self._versions)
        return ferretdb

    async def _choose_transactions(self, hello: Mapping[str, Any]) -> bool:
        if self._requested_mode != "auto":
            return self._requested_mode == "transactions"
        if not (hello.get("setName") or hello.get("msg") == "isdbgrid"):
            return False
        # FerretDB may report a replica set name yet reject transactions: try one.
        assert self._client is not None
        try:
            async with self._client.start_session() as session:

                async def probe(s: AsyncClientSession) -> None:
                    await self._meta.update_one(
                        {"_id": "transaction-probe"}, {"$set": {"at": utc_now()}}, True, session=s
                    )

                await session.with_transaction(probe)
        except PyMongoError:
            return False
        return True

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
        self._client = None
        self._versions_coll = self._transactions_coll = self._meta_coll = None
        self._heads_coll = None

    async def ping(self) -> None:
        if self._client is None:
            raise StoreUnavailable("the MongoDB store is not open")
        async with self._guard("ping"):
            await self._client.admin.command("ping")

    # -- reads ---------------------------------------------------------------------

    async def read(self, resource_type: str, resource_id: str) -> StoredVersion | None:
        async with self._guard("read"):
            if not await self._heads.may_exist(resource_type, resource_id):
                return None  # FerretDB: a resource never created (mongo_heads)
            doc = await self._latest(resource_type, resource_id, self._visibility())
        return to_version(doc) if doc else None

    async def vread(
        self, resource_type: str, resource_id: str, version: int
    ) -> StoredVersion | None:
        async with self._guard("vread"):
            doc = await self._versions.find_one(
                {"_id": version_doc_id(resource_type, resource_id, version)}
            )
            if doc is None or not await self._visibility().visible(doc):
                return None
        return to_version(doc)

    async def search(self, query: SearchQuery) -> SearchPage:
        async with self._guard("search"):
            visibility = self._visibility()
            return await mongo_search(
                self._versions,
                query,
                base={"cur": True, "deleted": False},
                is_current=visibility.current,
                to_version=to_version,
            )

    async def include(
        self, spec: IncludeSpec, resources: Sequence[tuple[str, str]], limit: int
    ) -> list[StoredVersion]:
        async with self._guard("search"):
            visibility = self._visibility()
            return await mongo_include(
                self._versions,
                spec,
                resources,
                limit,
                base={"cur": True, "deleted": False},
                is_current=visibility.current,
                to_version=to_version,
            )

    async def reindex(self, entries: Sequence[tuple[str, str, SearchIndex]]) -> None:
        async with self._guard("reindex"):
            for rtype, rid, index in entries:
                await self._versions.update_many(
                    {"type": rtype, "id": rid, "cur": True, "deleted": False},
                    {"$set": {"idx": index_document(index)}},
                )

    async def history(self, query: HistoryQuery) -> HistoryPage:
        filt: Doc = {}
        if query.resource_type is not None:
            filt["type"] = query.resource_type
        if query.resource_id is not None:
            filt["id"] = query.resource_id
        if query.since is not None:
            filt["lu"] = {"$gte": query.since}
        if query.cursor is not None:
            last_updated, doc_id = decode_cursor(query.cursor)
            filt["$or"] = [
                {"lu": {"$lt": last_updated}},
                {"lu": last_updated, "_id": {"$lt": doc_id}},
            ]
        wanted = max(query.count, 0) + 1
        docs: list[Doc] = []
        async with self._guard("history"):
            visibility = self._visibility()
            cursor: AsyncCursor[Doc] = self._versions.find(
                filt, {"idx": 0}, sort=[("lu", DESCENDING), ("_id", DESCENDING)]
            ).batch_size(wanted + 1)
            try:
                async for doc in cursor:
                    if await visibility.visible(doc):
                        docs.append(doc)
                        if len(docs) >= wanted:
                            break
            finally:
                await cursor.close()
        more = len(docs) > query.count
        docs = docs[: query.count]
        next_cursor = encode_cursor(docs[-1]["lu"], docs[-1]["_id"]) if more and docs else None
        return HistoryPage([to_version(d) for d in docs], next_cursor)

    # -- writes --------------------------------------------------------------------

    async def commit(self, writes: Sequence[Write]) -> None:
        if not writes:
            return
        try:
            if self._use_transactions:
                await self._commit_in_transaction(writes)
            else:
                await self._commit_staged(writes)
        except SlotTaken as taken:
            w = taken.write
            async with self._guard("commit"):
                latest = await self._latest(w.resource_type, w.id, self._visibility())
            actual = int(latest["version"]) if latest else 0
            raise VersionConflict(w.resource_type, w.id, w.expected_version, actual) from None
        self._commits_since_gc += 1
        if self._commits_since_gc >= GC_EVERY_COMMITS:
            self._commits_since_gc = 0
            async with self._guard("cleanup"):
                await self._delete_finished_records()

    # transactions (replica set, sharded cluster) ------------------------------------

    async def _commit_in_transaction(self, writes: Sequence[Write]) -> None:
        assert self._client is not None

        async def body(session: AsyncClientSession) -> None:
            visibility = self._visibility(session)
            written: dict[tuple[str, str], Doc] = {}
            started = utc_now()
            for w in writes:
                key = (w.resource_type, w.id)
                prev = written.get(key)
                if prev is None:
                    prev = await self._latest(w.resource_type, w.id, visibility, session)
                actual = int(prev["version"]) if prev else 0
                if actual != w.expected_version:
                    raise VersionConflict(w.resource_type, w.id, w.expected_version, actual)
                doc = self._new_doc(w, None, started)
                if prev is None:
                    await self._heads.claim(w.resource_type, w.id)  # outside the transaction
                try:
                    await self._versions.insert_one(doc, session=session)
                except DuplicateKeyError:
                    raise SlotTaken(w) from None
                if prev is not None:
                    await self._versions.update_one(
                        {"_id": prev["_id"]},
                        {"$set": {"cur": False}, "$unset": {"idx": ""}},
                        session=session,
                    )
                written[key] = doc
            await apause_before_commit()

        async with self._guard("commit"):
            async with self._client.start_session() as session:
                await session.with_transaction(
                    body,
                    read_concern=ReadConcern("snapshot"),
                    write_concern=WriteConcern("majority"),
                )
