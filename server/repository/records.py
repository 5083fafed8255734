"""The records API: the one door for Billable's own records in the store.

Security records (clients, users, keys, codes), the audit chain, export jobs and the
adjudication accumulators live in the FHIR store under their own type names
(``x-billable-...``, and ``AuditEvent`` for the audit trail). They are written here,
through the repository's single commit path, and indexed like any resource, so an
``AuditEvent?_lastUpdated=gt2000`` search finds the audit trail. Internal type names
are never FHIR resource types: the policy never serves them and searches never match
them. Callers are Billable's own modules; nothing an HTTP client sends reaches here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from server.instants import now_instant
from server.search.extract import extract_index_values
from server.spec.resources import is_resource_type
from server.storage.port import HistoryPage, HistoryQuery, StoredVersion, VersionConflict, Write
from server.validation import validate_resource

if TYPE_CHECKING:
    from server.repository.context import RequestContext
    from server.storage.port import Store

Commit = Callable[["RequestContext | None", Sequence[Write]], Awaitable[None]]
MAX_RETRIES = 20


class InternalRecords:
    """Read, compare-and-set and list internal records (optimistic concurrency)."""

    def __init__(self, store: Store, commit: Commit) -> None:
        self._store = store
        self._commit = commit

    async def read(self, kind: str, key: str) -> StoredVersion | None:
        """The latest version of a record (a delete marker included)."""
        return await self._store.read(kind, key)

    async def get(self, kind: str, key: str) -> tuple[int, dict[str, Any]] | None:
        """(version, value) of a live record."""
        current = await self._store.read(kind, key)
        if current is None or current.body is None:
            return None
        value: dict[str, Any] = orjson.loads(current.body)
        return current.version, value

    async def history(self, kind: str, cursor: str | None = None, count: int = 500) -> HistoryPage:
        return await self._store.history(HistoryQuery(kind, count=count, cursor=cursor))

    async def list(self, kind: str) -> list[dict[str, Any]]:
        """Every live record of a kind (administration; small collections only)."""
        seen: dict[str, dict[str, Any] | None] = {}
        cursor: str | None = None
        while True:
            page = await self.history(kind, cursor)
            for version in page.versions:  # newest first: the first seen is current
                if version.id not in seen:
                    seen[version.id] = orjson.loads(version.body) if version.body else None
            cursor = page.next_cursor
            if not cursor:
                break
        return [v for v in seen.values() if v is not None]

    @staticmethod
    def write(
        kind: str,
        key: str,
        expected: int,
        value: dict[str, Any] | None,
        last_updated: str | None = None,
    ) -> Write:
        """The next version of a record (``value`` None: a delete marker), indexed like
        any resource. A record of a FHIR type (the audit trail's AuditEvents) passes the
        same R4 validation as any write; internal ``x-billable-*`` kinds are not FHIR."""
        instant = last_updated or now_instant()
        if value is not None and is_resource_type(kind):
            validate_resource(value)
        return Write(
            kind,
            key,
            expected_version=expected,
            version=expected + 1,
            last_updated=instant,
            body=orjson.dumps(value) if value is not None else None,
            index=extract_index_values(value, instant) if value is not None else None,
        )

    async def commit(self, writes: Sequence[Write]) -> None:
        """All or none; raises ``VersionConflict``."""
        await self._commit(None, writes)

    async def put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        """Create or replace."""
        for _attempt in range(MAX_RETRIES):
            current = await self._store.read(kind, key)
            actual = current.version if current else 0
            try:
                await self.commit([self.write(kind, key, actual, value)])
                return
            except VersionConflict:
                continue
        raise RuntimeError(f"{kind}/{key}: too many concurrent changes")

    async def insert(self, kind: str, key: str, value: dict[str, Any]) -> bool:
        """Create; ``False`` when the record already exists (or once existed)."""
        if await self._store.read(kind, key) is not None:
            return False
        try:
            await self.commit([self.write(kind, key, 0, value)])
        except VersionConflict:
            return False
        return True

    async def replace(self, kind: str, key: str, version: int, value: dict[str, Any]) -> int:
        """Write ``value`` if the record is still at ``version``; the new version.

        Raises ``VersionConflict`` when someone else changed (or deleted) it first.
        """
        await self.commit([self.write(kind, key, version, value)])
        return version + 1

    async def consume(self, kind: str, key: str) -> dict[str, Any] | None:
        """Read and delete in one step; only one caller ever gets the value."""
        current = await self._store.read(kind, key)
        if current is None or current.body is None:
            return None
        try:
            await self.commit([self.write(kind, key, current.version, None)])
        except VersionConflict:
            return None
        value: dict[str, Any] = orjson.loads(current.body)
        return value

    async def delete(self, kind: str, key: str) -> bool:
        """Delete a live record (retrying lost races); whether there was one."""
        for _attempt in range(MAX_RETRIES):
            current = await self._store.read(kind, key)
            if current is None or current.body is None:
                return False
            try:
                await self.commit([self.write(kind, key, current.version, None)])
                return True
            except VersionConflict:
                continue
        raise RuntimeError(f"{kind}/{key}: too many concurrent changes")
