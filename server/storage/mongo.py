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

Atomic commits
--------------
On a replica set or a sharded cluster (``hello`` reports ``setName`` or
``msg: "isdbgrid"``, and a probe transaction succeeds) each ``commit`` runs in one
multi-document transaction (``atomic_commit="transactions"``); transient errors are
retried by ``with_transaction``.

A standalone server or FerretDB has no transactions, so there commits are *staged*
(``atomic_commit="staged"``):

1. *stage*: for every write, insert the new version carrying ``txn: T`` (the unique
   index claims the resource) and mark the version it replaces with ``sup: T``;
2. *decide*: insert ``{_id: T, state: "committed"}`` into ``transactions``. This single
   insert is the commit point; whoever inserts a record for ``T`` first decides it, so
   a committer and a recovering process can never both win;
3. *roll forward*: clear ``txn`` on the new versions, flip ``cur``/drop ``idx`` on the
   versions marked ``sup``, then stamp the record ``done_at``.

Readers treat a document carrying ``txn: T`` as absent, and one carrying ``sup: T`` as
still current, unless ``T``'s record says committed: only documents with a marker need
that look-up, so reads stay cheap. A failure before step 2 aborts: insert an
``aborted`` record (if ``T`` turns out committed, roll forward instead), remove the
``sup`` marks, delete the staged versions. ``open()`` recovers after a crash: commits
with a committed record are rolled forward, all others are aborted and rolled back.
This assumes one Billable process per database in staged mode (a second process
starting up would abort commits the first has in flight; they fail cleanly, nothing
is half-visible). While running, a staged version whose commit is undecided for longer
than ``stale_after`` seconds is aborted by the next writer it blocks. Records of
finished commits are deleted ten minutes after completion, long after any reader that
could still be looking at their markers.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pymongo import DESCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from server.search.mongo_index import index_document
from server.search.mongo_render import mongo_include, mongo_search
from server.storage.mongo_heads import Heads
from server.storage.mongo_indexes import create_indexes
from server.storage.port import (
    BackendInfo,
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

Doc = dict[str, Any]
AtomicCommit = Literal["auto", "transactions", "staged"]

DEFAULT_DATABASE = "billable"
DEFAULT_SERVER_SELECTION_TIMEOUT_MS = 5000
# Records of finished staged commits are kept this long so that a reader that saw a
# marker can still look its commit up.
FINISHED_RECORD_TTL = timedelta(minutes=10)
GC_EVERY_COMMITS = 256

COMMITTED = "committed"
DUPLICATE_KEY = 11000
ABORTED = "aborted"


class _SlotTaken(Exception):
    """Another writer already moved this resource on from the expected version."""

    def __init__(self, write: Write) -> None:
        self.write = write


def redact_url(url: str) -> str:
    """The URL without its password, for logs and health output."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    userinfo, hosts = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{hosts}"))


def version_doc_id(resource_type: str, resource_id: str, version: int) -> str:
    return f"{resource_type}/{resource_id}/{version:09d}"


def _to_version(doc: Mapping[str, Any]) -> StoredVersion:
    body = doc.get("body")
    return StoredVersion(
        resource_type=doc["type"],
        id=doc["id"],
        version=int(doc["version"]),
        last_updated=doc["lu"],
        deleted=bool(doc["deleted"]),
        body=bytes(body) if body is not None else None,
    )


def _encode_cursor(last_updated: str, doc_id: str) -> str:
    raw = json.dumps([last_updated, doc_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        last_updated, doc_id = json.loads(base64.urlsafe_b64decode(padded))
        return str(last_updated), str(doc_id)
    except (ValueError, TypeError) as exc:
        raise ValueError("malformed paging cursor") from exc


def _one_line(exc: BaseException) -> str:
    """PyMongo's server-selection errors carry a topology dump; keep the first clause."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    for cut in (", Timeout:", " (configured timeouts", ", full error:"):
        text = text.split(cut, 1)[0]
    return text


def _now() -> datetime:
    return datetime.now(UTC)


class _Visibility:
    """Decides, per call, which marked documents readers may see (fallback scheme)."""

    def __init__(self, transactions: AsyncCollection[Doc], session: AsyncClientSession | None):
        self._transactions = transactions
        self._session = session
        self._states: dict[str, str | None] = {}

    async def committed(self, txn: str) -> bool:
        if txn not in self._states:
            record = await self._transactions.find_one({"_id": txn}, session=self._session)
            self._states[txn] = record["state"] if record else None
        return self._states[txn] == COMMITTED

    async def visible(self, doc: Mapping[str, Any]) -> bool:
        """The version exists for readers (its commit, if staged, is decided)."""
        txn = doc.get("txn")
        return txn is None or await self.committed(txn)

    async def current(self, doc: Mapping[str, Any]) -> bool:
        """The version is visible and is still the newest one of its resource."""
        if not doc.get("cur") or not await self.visible(doc):
            return False
        sup = doc.get("sup")
        return sup is None or not await self.committed(sup)


class MongoStore:
    """``Store`` on a MongoDB database named by the URL path (default ``billable``)."""

    def __init__(
        self,
        url: str,
        *,
        atomic_commit: AtomicCommit = "auto",
        stale_after: float = 30.0,
    ) -> None:
        self.url = url
        self.info = BackendInfo(kind="mongodb", location=redact_url(url), atomic_commit="unknown")
        self._requested_mode = atomic_commit
        self._stale_after = timedelta(seconds=stale_after)
        self._client: AsyncMongoClient[Doc] | None = None
        self._versions_coll: AsyncCollection[Doc] | None = None
        self._transactions_coll: AsyncCollection[Doc] | None = None
        self._meta_coll: AsyncCollection[Doc] | None = None
        self._heads_coll: Heads | None = None
        self._use_transactions = False
        self._commits_since_gc = 0

    # -- plumbing ------------------------------------------------------------------

    @property
    def _versions(self) -> AsyncCollection[Doc]:
        if self._versions_coll is None:
            raise StoreUnavailable("the MongoDB store is not open")
        return self._versions_coll

    @property
    def _transactions(self) -> AsyncCollection[Doc]:
        if self._transactions_coll is None:
            raise StoreUnavailable("the MongoDB store is not open")
        return self._transactions_coll

    @property
    def _meta(self) -> AsyncCollection[Doc]:
        if self._meta_coll is None:
            raise StoreUnavailable("the MongoDB store is not open")
        return self._meta_coll

    @property
    def _heads(self) -> Heads:
        if self._heads_coll is None:
            raise StoreUnavailable("the MongoDB store is not open")
        return self._heads_coll

    @asynccontextmanager
    async def _guard(self, doing: str) -> AsyncIterator[None]:
        """Turn every driver error into ``StoreUnavailable`` with a one-line message."""
        try:
            yield
        except PyMongoError as exc:
            raise StoreUnavailable(
                f"MongoDB at {self.info.location}: {doing} failed: {_one_line(exc)}"
            ) from exc

    def _visibility(self, session: AsyncClientSession | None = None) -> _Visibility:
        return _Visibility(self._transactions, session)

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        options: dict[str, Any] = {"appname": "billable"}
        if "serverselectiontimeoutms" not in self.url.lower():
            options["serverSelectionTimeoutMS"] = DEFAULT_SERVER_SELECTION_TIMEOUT_MS
        try:
            client: AsyncMongoClient[Doc] = AsyncMongoClient(self.url, **options)
        except PyMongoError as exc:
            raise StoreUnavailable(
                f"invalid MongoDB URL {self.info.location}: {_one_line(exc)}"
            ) from exc
        try:
            hello = await client.admin.command("hello")
        except PyMongoError as exc:
            await client.close()
            raise StoreUnavailable(
                f"cannot reach MongoDB at {self.info.location}: {_one_line(exc)}"
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
                        {"_id": "transaction-probe"}, {"$set": {"at": _now()}}, True, session=s
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

    async def _latest(
        self,
        resource_type: str,
        resource_id: str,
        visibility: _Visibility,
        session: AsyncClientSession | None = None,
        exclude_txn: str | None = None,
    ) -> Doc | None:
        """The newest visible version (``exclude_txn``: ignoring that commit's own staging).

        ``id`` comes first: FerretDB on PostgreSQL evaluates the pushed-down equalities in
        order, and ``id`` rejects nearly every row at the first test."""
        cursor = self._versions.find(
            {"id": resource_id, "type": resource_type},
            session=session,
            sort=[("version", DESCENDING)],
        )
        try:
            async for doc in cursor:
                if exclude_txn is not None and doc.get("txn") == exclude_txn:
                    continue
                if await visibility.visible(doc):
                    return doc
        finally:
            await cursor.close()
        return None

    async def read(self, resource_type: str, resource_id: str) -> StoredVersion | None:
        async with self._guard("read"):
            if not await self._heads.may_exist(resource_type, resource_id):
                return None  # FerretDB: a resource never created (mongo_heads)
            doc = await self._latest(resource_type, resource_id, self._visibility())
        return _to_version(doc) if doc else None

    async def vread(
        self, resource_type: str, resource_id: str, version: int
    ) -> StoredVersion | None:
        async with self._guard("vread"):
            doc = await self._versions.find_one(
                {"_id": version_doc_id(resource_type, resource_id, version)}
            )
            if doc is None or not await self._visibility().visible(doc):
                return None
        return _to_version(doc)

    async def search(self, query: SearchQuery) -> SearchPage:
        async with self._guard("search"):
            visibility = self._visibility()
            return await mongo_search(
                self._versions,
                query,
                base={"cur": True, "deleted": False},
                is_current=visibility.current,
                to_version=_to_version,
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
                to_version=_to_version,
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
            last_updated, doc_id = _decode_cursor(query.cursor)
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
        next_cursor = _encode_cursor(docs[-1]["lu"], docs[-1]["_id"]) if more and docs else None
        return HistoryPage([_to_version(d) for d in docs], next_cursor)

    # -- writes --------------------------------------------------------------------

    def _new_doc(self, w: Write, txn: str | None, started: datetime) -> Doc:
        doc: Doc = {
            "_id": version_doc_id(w.resource_type, w.id, w.version),
            "type": w.resource_type,
            "id": w.id,
            "version": w.version,
            "prev": w.expected_version,
            "lu": w.last_updated,
            "deleted": w.deleted,
            "body": w.body,
            "cur": True,
        }
        if not w.deleted and w.index is not None:
            doc["idx"] = index_document(w.index)
        if txn is not None:
            doc["txn"] = txn
            doc["started"] = started
        return doc

    async def commit(self, writes: Sequence[Write]) -> None:
        if not writes:
            return
        try:
            if self._use_transactions:
                await self._commit_in_transaction(writes)
            else:
                await self._commit_staged(writes)
        except _SlotTaken as taken:
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
            started = _now()
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
                    raise _SlotTaken(w) from None
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

    # staged fallback (standalone server, FerretDB) ----------------------------------

    async def _commit_staged(self, writes: Sequence[Write]) -> None:
        txn = uuid.uuid4().hex
        started = _now()
        staged = False
        decided = False
        superseding = False
        try:
            async with self._guard("commit"):
                visibility = self._visibility()
                written: dict[tuple[str, str], Doc] = {}
                plan: list[tuple[Write, Doc, Doc | None]] = []  # write, its doc, own prev
                for w in writes:
                    key = (w.resource_type, w.id)
                    own_prev = written.get(key)
                    if own_prev is not None and int(own_prev["version"]) != w.expected_version:
                        raise VersionConflict(
                            w.resource_type, w.id, w.expected_version, int(own_prev["version"])
                        )
                    doc = self._new_doc(w, txn, started)
                    plan.append((w, doc, own_prev))
                    written[key] = doc
                # Heads before any version is staged (mongo_heads: a miss must be true).
                await self._heads.claim_all(
                    [(w.resource_type, w.id) for w, _, own in plan if own is None]
                )
                staged = True
                # The unique (type, id, prev) index claims the successor of each expected
                # version (a create: prev 0, which any earlier version holds); one
                # insert_many, so FerretDB stores the commit in one PostgreSQL transaction.
                await self._stage_all([d for _, d, _ in plan], [w for w, _, _ in plan])
                for w, _, own_prev in plan:
                    if own_prev is not None:
                        await self._versions.update_one(
                            {"_id": own_prev["_id"]},
                            {"$set": {"cur": False}, "$unset": {"idx": ""}},
                        )
                    elif w.expected_version:
                        await self._mark_superseded(w, txn, visibility)
                        superseding = True
                await apause_before_commit()
                decided = True
                if await self._decide(txn, COMMITTED) != COMMITTED:
                    await self._abort(txn)  # finish the abort another process started
                    raise StoreUnavailable(
                        f"MongoDB at {self.info.location}: commit {txn} was aborted by a"
                        " recovering process before it completed; nothing was stored"
                    )
        except BaseException:
            if staged and not decided:
                async with self._guard("rollback"):
                    await self._abort(txn)
            raise
        async with self._guard("commit"):
            await self._roll_forward(txn, superseding)

    async def _mark_superseded(self, w: Write, txn: str, visibility: _Visibility) -> None:
        """Mark the expected version as being superseded by ``txn``, after checking that it
        is the newest visible version of the resource.

        Usually one conditional update by ``_id`` does both: the expected version exists,
        is current, settled (no marker of another commit) and nobody else is superseding
        it. Otherwise the newest visible version is looked up: a different one is a
        conflict; a committed commit's version not yet rolled forward is marked anyway.
        Either way no version look-up by ``(type, id)`` is needed in the common case, and
        our staged successor (already inserted) makes every rival writer conflict."""
        prev_id = version_doc_id(w.resource_type, w.id, w.expected_version)
        marked = await self._versions.update_one(
            {"_id": prev_id, "cur": True, "sup": {"$exists": False}, "txn": {"$exists": False}},
            {"$set": {"sup": txn}},
        )
        if marked.matched_count == 1:
            return
        latest = await self._latest(w.resource_type, w.id, visibility, exclude_txn=txn)
        actual = int(latest["version"]) if latest else 0
        if actual != w.expected_version:
            raise VersionConflict(w.resource_type, w.id, w.expected_version, actual)
        marked = await self._versions.update_one(
            {"_id": prev_id, "cur": True, "sup": {"$exists": False}}, {"$set": {"sup": txn}}
        )
        if marked.matched_count != 1:
            raise _SlotTaken(w)

    async def _stage_all(self, docs: list[Doc], ws: list[Write]) -> None:
        """Insert staged versions in order, in as few round trips as the conflicts allow: a
        duplicate key stops an ordered ``insert_many`` at that document, which is then
        settled alone (``_stage``: a stale blocker cleared, or ``_SlotTaken``)."""
        start = 0
        while start < len(docs):
            try:
                await self._versions.insert_many(docs[start:], ordered=True)
                return
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors") or []
                if not errors or errors[0].get("code") != DUPLICATE_KEY:
                    raise
                failed = start + int(errors[0]["index"])
            await self._stage(docs[failed], ws[failed])
            start = failed + 1

    async def _stage(self, doc: Doc, w: Write) -> None:
        """Insert a staged version; a stale or aborted commit in the way is cleared once."""
        for attempt in range(2):
            try:
                await self._versions.insert_one(doc)
                return
            except DuplicateKeyError:
                if attempt or not await self._clear_blocker(doc):
                    raise _SlotTaken(w) from None

    async def _clear_blocker(self, doc: Doc) -> bool:
        """Resolve the undecided commit holding ``doc``'s slot; true if the slot may be free."""
        blocker = await self._versions.find_one(
            {"type": doc["type"], "id": doc["id"], "prev": doc["prev"]}
        ) or await self._versions.find_one({"_id": doc["_id"]})
        if blocker is None:
            return True
        txn = blocker.get("txn")
        if txn is None:
            return False
        record = await self._transactions.find_one({"_id": txn})
        if record is not None and record["state"] == COMMITTED:
            await self._roll_forward(txn)
            return False
        started = blocker.get("started")
        if record is None and started is not None:
            if started.tzinfo is None:
                started = started.replace(tzinfo=UTC)
            if _now() - started < self._stale_after:
                return False
        return await self._abort(txn) == ABORTED

    async def _decide(self, txn: str, state: str) -> str:
        """Record the outcome of ``txn`` unless one is recorded already; return the outcome."""
        try:
            await self._transactions.insert_one({"_id": txn, "state": state, "at": _now()})
            return state
        except DuplicateKeyError:
            record = await self._transactions.find_one({"_id": txn})
            return str(record["state"]) if record else state

    async def _abort(self, txn: str) -> str:
        """Abort ``txn`` and undo its staging, or roll it forward if it was committed."""
        outcome = await self._decide(txn, ABORTED)
        if outcome == COMMITTED:
            await self._roll_forward(txn)
            return COMMITTED
        await self._versions.update_many({"sup": txn}, {"$unset": {"sup": ""}})
        await self._versions.delete_many({"txn": txn})
        await self._transactions.update_one({"_id": txn}, {"$set": {"done_at": _now()}})
        return ABORTED

    async def _roll_forward(self, txn: str, superseding: bool = True) -> None:
        """Settle a committed ``txn``; ``superseding=False``: it replaced no version (creates
        only), so there are no ``sup`` marks to look for (one collection pass fewer)."""
        if superseding:
            await self._versions.update_many(
                {"sup": txn}, {"$set": {"cur": False}, "$unset": {"sup": "", "idx": ""}}
            )
        await self._versions.update_many({"txn": txn}, {"$unset": {"txn": "", "started": ""}})
        await self._transactions.update_one({"_id": txn}, {"$set": {"done_at": _now()}})

    async def _recover(self) -> None:
        """Finish what a crashed process left: roll committed commits forward, abort the rest."""
        pending: set[str] = set()
        pending.update(t for t in await self._versions.distinct("txn") if isinstance(t, str))
        pending.update(t for t in await self._versions.distinct("sup") if isinstance(t, str))
        async for record in self._transactions.find({"done_at": {"$exists": False}}, {"_id": 1}):
            pending.add(record["_id"])
        for txn in sorted(pending):
            await self._abort(txn)
        await self._delete_finished_records()

    async def _delete_finished_records(self) -> None:
        await self._transactions.delete_many({"done_at": {"$lt": _now() - FINISHED_RECORD_TTL}})


__all__ = ["MongoStore", "redact_url", "version_doc_id"]
