"""How a MongoDB store commits atomically: server transactions (``MongoStore``), or
staged commits (``StagedCommits``, here).

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

import uuid
from collections.abc import Sequence
from datetime import UTC

from pymongo.errors import BulkWriteError, DuplicateKeyError

from server.storage.mongo_base import (
    ABORTED,
    COMMITTED,
    DUPLICATE_KEY,
    FINISHED_RECORD_TTL,
    Doc,
    MongoBase,
    SlotTaken,
    Visibility,
    utc_now,
    version_doc_id,
)
from server.storage.port import (
    StoreUnavailable,
    VersionConflict,
    Write,
)
from server.storage.testhooks import apause_before_commit


class StagedCommits(MongoBase):
    """The staged fallback (standalone server, FerretDB): stage, decide, roll forward."""

    async def _commit_staged(self, writes: Sequence[Write]) -> None:
        txn = uuid.uuid4().hex
        started = utc_now()
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

    async def _mark_superseded(self, w: Write, txn: str, visibility: Visibility) -> None:
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
            raise SlotTaken(w)

    async def _stage_all(self, docs: list[Doc], ws: list[Write]) -> None:
        """Insert staged versions in order, in as few round trips as the conflicts allow: a
        duplicate key stops an ordered ``insert_many`` at that document, which is then
        settled alone (``_stage``: a stale blocker cleared, or ``SlotTaken``)."""
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
                    raise SlotTaken(w) from None

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
            if utc_now() - started < self._stale_after:
                return False
        return await self._abort(txn) == ABORTED

    async def _decide(self, txn: str, state: str) -> str:
        """Record the outcome of ``txn`` unless one is recorded already; return the outcome."""
        try:
            await self._transactions.insert_one({"_id": txn, "state": state, "at": utc_now()})
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
        await self._transactions.update_one({"_id": txn}, {"$set": {"done_at": utc_now()}})
        return ABORTED

    async def _roll_forward(self, txn: str, superseding: bool = True) -> None:
        """Settle a committed ``txn``; ``superseding=False``: it replaced no version (creates
        only), so there are no ``sup`` marks to look for (one collection pass fewer)."""
        if superseding:
            await self._versions.update_many(
                {"sup": txn}, {"$set": {"cur": False}, "$unset": {"sup": "", "idx": ""}}
            )
        await self._versions.update_many({"txn": txn}, {"$unset": {"txn": "", "started": ""}})
        await self._transactions.update_one({"_id": txn}, {"$set": {"done_at": utc_now()}})

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
        await self._transactions.delete_many({"done_at": {"$lt": utc_now() - FINISHED_RECORD_TTL}})
