"""The repository's core: the private store, visibility, and the ONE write path.

Only this package holds the storage port (``self._store``). Every version that leaves
it has passed the policy; every write, a client's or Billable's own, is committed by
``_commit``, which adds the Provenance of the caller named by the ``RequestContext``
(in the same atomic commit), tells the commit listeners and audits engine writes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import orjson

from server.audit.provenance import provenance_for
from server.errors import FhirError
from server.repository.context import AccessPolicy, OpenAccess, RequestContext
from server.repository.process_lock import ProcessLock, lock_file
from server.repository.records import InternalRecords
from server.repository.versions import InstantClock, as_stored, serialise_with_meta, with_id
from server.search.extract import extract_index_values
from server.spec.resources import is_resource_type
from server.storage.port import (
    BackendInfo,
    SearchIndex,
    SearchQuery,
    SearchStore,
    Store,
    StoredVersion,
    Write,
)
from server.validation import validate_resource

if TYPE_CHECKING:
    from server.audit.chain import AuditRecord

log = logging.getLogger("billable.repository")

AuditSink = Callable[["AuditRecord"], Awaitable[str]]


class RepositoryCore:
    def __init__(
        self,
        store: Store,
        policy: AccessPolicy | None = None,
        clock: InstantClock | None = None,
    ) -> None:
        self._store = store
        self.policy: AccessPolicy = policy or OpenAccess()
        self.clock = clock or InstantClock()
        # Serialises check-then-create, in this process and across the processes sharing
        # the store (``--workers``), so that two concurrent conditional creates with the
        # same criteria cannot both create.
        self._conditional_lock = ProcessLock(lock_file(store.info, "conditional"))
        self._process_locks: dict[tuple[str, int], ProcessLock] = {}
        # Told the writes of every successful commit (e.g. the coding engine's trigger).
        # A listener must not block or raise: it schedules its own work.
        self.commit_listeners: list[Callable[[Sequence[Write]], None]] = []
        # Where the writes of Billable's own engines are audited (the audit trail, set by
        # the security wiring); client requests are audited by the security middleware.
        self.audit_sink: AuditSink | None = None
        self.records = InternalRecords(self._store, self._commit)

    # -- the backend -----------------------------------------------------------------

    def process_lock(self, name: str, key: str | None = None) -> ProcessLock:
        """A lock held across every process sharing this store on this host, for a
        check-then-write of Billable's own engines (``name``; ``key`` picks one of 64
        stripes, e.g. per member)."""
        stripe = 0
        if key is not None:
            digest = hashlib.blake2b(key.encode(), digest_size=4).digest()
            stripe = 1 + int.from_bytes(digest, "big") % 64
        found = self._process_locks.get((name, stripe))
        if found is None:
            found = self._process_locks[(name, stripe)] = ProcessLock(
                lock_file(self._store.info, name), stripe
            )
        return found

    @property
    def backend(self) -> BackendInfo:
        """What the store is (health checks, logs, the CapabilityStatement)."""
        return self._store.info

    async def open(self) -> None:
        await self._store.open()

    async def close(self) -> None:
        await self._store.close()

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store answers."""
        await self._store.ping()

    def _search_port(self) -> SearchStore:
        if not hasattr(self._store, "search"):
            raise FhirError.of(
                501,
                "not-supported",
                f"Search is not available on the {self._store.info.kind} store yet",
            )
        return cast(SearchStore, self._store)

    # -- visibility ------------------------------------------------------------------

    async def _visible(
        self, ctx: RequestContext, interaction: str, version: StoredVersion | None
    ) -> StoredVersion | None:
        """``version`` if the policy lets ``ctx`` see it, else ``None`` (reads as 404).

        A delete marker has no content to judge, so the version before it decides.
        """
        if version is None or self.policy.can_see(ctx, interaction, version):
            return version
        if version.deleted and version.version > 1:
            before = await self._store.vread(version.resource_type, version.id, version.version - 1)
            if before is not None and self.policy.can_see(ctx, interaction, before):
                return version
        return None

    # -- the one write path ----------------------------------------------------------

    def new_version(
        self, resource_type: str, rid: str, resource: dict[str, Any], expected: int
    ) -> tuple[Write, StoredVersion]:
        """The next version of ``resource``, its index values extracted (no policy: the
        callers in this package have judged it)."""
        version = expected + 1
        last_updated = self.clock.next()
        body = serialise_with_meta(resource, rid, version, last_updated)
        write = Write(
            resource_type,
            rid,
            expected_version=expected,
            version=version,
            last_updated=last_updated,
            body=body,
            index=extract_index_values(resource, last_updated),
        )
        return write, as_stored(write)

    def plan_write(
        self,
        ctx: RequestContext,
        interaction: str,
        resource_type: str,
        rid: str,
        resource: dict[str, Any],
        expected: int,
        *,
        validated: bool = False,
    ) -> tuple[Write, StoredVersion]:
        """A version to commit later with ``commit_planned``: validated (unless the caller
        already did, e.g. the bundle validation pool) and judged by the policy exactly as
        it will be stored (references rewritten, under ``rid``)."""
        if not validated:
            validate_resource(resource)
        self.policy.authorize(ctx, interaction, resource_type, with_id(resource, rid))
        return self.new_version(resource_type, rid, resource, expected)

    def plan_delete(self, resource_type: str, rid: str, current: StoredVersion) -> Write:
        """The delete marker that follows ``current``."""
        return Write(
            resource_type,
            rid,
            expected_version=current.version,
            version=current.version + 1,
            last_updated=self.clock.next(),
            body=None,
        )

    async def commit_planned(self, ctx: RequestContext, writes: list[Write]) -> None:
        """Commit writes planned with ``plan_write``/``plan_delete`` (and internal records
        from ``records.write``): all of them or none.

        Raises ``VersionConflict`` when a resource changed since it was planned.
        """
        await self._commit(ctx, writes)

    async def _commit(self, ctx: RequestContext | None, writes: Sequence[Write]) -> None:
        """The only call of ``Store.commit``. ``ctx`` None: internal records only (the
        records API), which carry no Provenance and are not audited again."""
        extra: Write | None = None
        if ctx is not None and ctx.grants is not None:
            if not any(w.resource_type == "Provenance" for w in writes):
                extra = provenance_for(writes, ctx.grants)
        await self._store.commit([*writes, extra] if extra is not None else writes)
        self._committed(writes)
        if ctx is not None and ctx.system:
            await self._audit_engine_write(ctx, writes)

    def _committed(self, writes: Sequence[Write]) -> None:
        for listener in self.commit_listeners:
            try:
                listener(writes)
            except Exception:  # a listener never fails the write that has committed
                log.exception("commit listener failed")

    async def _audit_engine_write(self, ctx: RequestContext, writes: Sequence[Write]) -> None:
        """One AuditEvent per commit of an engine (coding, adjudication, publisher)."""
        if self.audit_sink is None:
            return
        from server.audit.chain import AuditRecord

        written = [w for w in writes if is_resource_type(w.resource_type)]
        if not written:
            return
        refs = [f"{w.resource_type}/{w.id}/_history/{w.version}" for w in written]
        first = written[0]
        action = "D" if first.deleted else ("C" if first.expected_version == 0 else "U")
        more = f" (+{len(refs) - 20} more)" if len(refs) > 20 else ""
        record = AuditRecord(
            action=action,
            interaction={"C": "create", "U": "update", "D": "delete"}[action],
            status=200,
            client_id=ctx.client_id,
            user=None,
            remote_addr="127.0.0.1",
            entity=f"{first.resource_type}/{first.id}",
            description=f"{ctx.client_id} wrote {', '.join(refs[:20])}{more}",
        )
        try:
            await self.audit_sink(record)
        except Exception:  # the write has committed; a failed audit append is logged
            log.exception("audit of an engine write failed")

    # -- maintenance -----------------------------------------------------------------

    async def reindex(
        self,
        types: tuple[str, ...] = (),
        batch: int = 500,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Re-extract the index values of every current resource (of ``types``; all when
        empty): ``billable reindex``, needed after the registry or the extraction changes.

        Walks the current resources in keyset order a batch at a time and replaces their
        index rows; writes that happen meanwhile index themselves as usual.
        """
        port = self._search_port()
        done = 0
        after = None
        while True:
            page = await port.search(SearchQuery(types, count=batch, after=after))
            entries: list[tuple[str, str, SearchIndex]] = []
            for version in page.versions:
                resource = decode(version)
                assert resource is not None
                index = extract_index_values(resource, version.last_updated)
                entries.append((version.resource_type, version.id, index))
            if entries:
                await port.reindex(entries)
            done += len(entries)
            if progress is not None:
                progress(done)
            if not page.more or not page.positions:
                return done
            after = page.positions[-1]


def decode(version: StoredVersion | None) -> dict[str, Any] | None:
    """The JSON of a stored version (``None`` for a missing one or a delete marker)."""
    if version is None or version.body is None:
        return None
    value: dict[str, Any] = orjson.loads(version.body)
    return value
