"""The audit trail with a crash-safe queue in front: answer first, commit in batches.

``JournaledTrail`` has the interface of ``AuditTrail`` (the middleware and the engines
append to it the same way). ``append`` writes the record to the local journal
(``server.audit.journal``) and returns: the request is answered without waiting for the
store. A flusher commits what is queued through the trail's own ``_commit`` (the same
keyed chain, head and anchor) every ``FLUSH_DELAY_S`` at most, so one store commit
carries the events of every request of those milliseconds; a failed commit is retried,
the records staying in the journal. Reads of AuditEvents wait for the queue first
(``flushed``), so an auditor always sees every request answered before theirs; shutting
down empties the queue; after a crash the next start commits what the journal still
holds (exactly once, see ``journal.py``).

Off by default (``BILLABLE_AUDIT_JOURNAL=1`` turns it on): the default trail commits
each request's event before answering. docs/security.md says what each guarantees.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import orjson

from server.audit.chain import HEAD_TYPE, AuditRecord, AuditTrail, _instant
from server.audit.journal import SLOTS, AuditJournal, slot_path
from server.audit.lanes import MAX_LANES, head_id
from server.audit.verify import ChainReport

if TYPE_CHECKING:
    from server.audit.seal import AuditSeal
    from server.repository import Repository

log = logging.getLogger("billable.audit.queue")


class JournaledTrail:
    FLUSH_DELAY_S = 0.002  # how long a batch gathers before its commit
    RETRY_S = 0.5  # after a failed commit (the store is down): the records wait
    MAX_BATCH = 2000

    journaled = True

    def __init__(self, repository: Repository, seal: AuditSeal, journal: AuditJournal) -> None:
        self.trail = AuditTrail(repository, seal)
        self.journal = journal
        self._queued: list[tuple[int, str, AuditRecord]] = []
        self._opened = False
        self._open_lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self._hurry: asyncio.Event | None = None  # set: commit now, without the delay

    @property
    def seal(self) -> AuditSeal:
        return self.trail.seal

    def expect(self) -> None:
        """Nothing to gather here: the flusher batches by time."""

    def unexpect(self) -> None:
        """See ``expect``."""

    async def append(self, record: AuditRecord, expected: bool = False) -> str:
        """Queue one record crash-safely; returns "" (its event id is given at commit)."""
        if not self._opened:
            await self._open()
        recorded = _instant(time.time())
        number = self.journal.write(record, recorded)  # OSError: not queued, not answered
        self._queued.append((number, recorded, record))
        self._kick()
        return ""

    async def _open(self) -> None:
        """Claim the trail's lane and the journal slot that goes with it; commit what a
        stopped process left in it, and in any other journal no live process holds."""
        async with self._open_lock:
            if self._opened:
                return
            lane = self.trail.claim_lane()
            left = self.journal.open(preferred=lane + 1)
            assert self.journal.id is not None
            done = await self._committed_through(self.journal.id)
            self.journal.last = max(self.journal.last, done)
            await self._replay(self.journal, left, done)
            for slot in range(1, SLOTS + 1):
                if slot_path(self.journal, slot) == self.journal.path:
                    continue  # this trail's own
                orphan = AuditJournal(self.journal.key_file)
                found = orphan.take(slot)  # None: held by a live process, or empty
                if found is None:
                    continue
                try:
                    assert orphan.id is not None
                    await self._replay(orphan, found, await self._committed_through(orphan.id))
                finally:
                    orphan.close()
            self._opened = True

    async def _replay(
        self, journal: AuditJournal, left: list[tuple[int, str, AuditRecord]], done: int
    ) -> None:
        """Commit the lines of ``journal`` after ``done`` (the last one in the store)
        into this trail's lane, then empty the journal."""
        if not left:
            return
        pending = [line for line in left if line[0] > done]
        if pending:
            log.warning(
                "audit journal %s: committing %d records a stopped process left",
                journal.path,
                len(pending),
            )
            assert journal.id is not None
            await self._commit_lines(pending, journal.id)
        journal.empty()

    async def _committed_through(self, journal_id: str) -> int:
        """The last line of a journal that a lane's head says is in the store: the mark
        is in the head of the lane that committed it (before lanes, and whenever a
        journal changed hands between lanes, another lane than this trail's)."""

        async def mark(lane: int) -> int:
            head = await self.trail.records.read(HEAD_TYPE, head_id(lane))
            if head is None or head.body is None:
                return 0
            journals = orjson.loads(head.body).get("journals", {})
            return int(journals.get(journal_id, 0))

        return max(await asyncio.gather(*(mark(lane) for lane in range(MAX_LANES))))

    async def _commit_lines(
        self, lines: list[tuple[int, str, AuditRecord]], journal_id: str | None = None
    ) -> None:
        journal_id = journal_id or self.journal.id
        assert journal_id is not None
        async with self.trail._lock:  # this trail's commits, one at a time
            await self.trail._commit(
                [record for _, _, record in lines],
                [at for _, at, _ in lines],
                (journal_id, lines[-1][0]),
            )

    def _kick(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        if self._hurry is None:
            self._hurry = asyncio.Event()
        while self._queued:
            if not self._hurry.is_set():
                try:  # let a batch gather, unless an auditor is waiting
                    await asyncio.wait_for(self._hurry.wait(), self.FLUSH_DELAY_S)
                except TimeoutError:
                    pass
            self._hurry.clear()
            batch = self._queued[: self.MAX_BATCH]
            try:
                await self._commit_lines(batch)
            except Exception:
                log.exception("audit queue: commit failed; %d records wait", len(self._queued))
                await asyncio.sleep(self.RETRY_S)
                continue
            del self._queued[: len(batch)]
        self.journal.empty()  # all of it is in the store

    async def flushed(self) -> None:
        """Return once every record appended so far is in the store."""
        while self._queued:
            if self._flusher is None or self._flusher.done():
                self._kick()
            if self._hurry is not None:
                self._hurry.set()
            assert self._flusher is not None
            await asyncio.shield(self._flusher)

    async def close(self) -> None:
        """Commit what is queued (shutdown), then let the journal slot and the lane go."""
        if self._opened:
            await self.flushed()
            self.journal.close()
            self._opened = False
        await self.trail.close()

    async def verify(self) -> list[str]:
        return await self.trail.verify()

    async def check(self) -> ChainReport:
        return await self.trail.check()
