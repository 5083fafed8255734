"""Security records (clients, users, keys, codes, refresh tokens) kept in the FHIR store.

They go through the same storage port as resources, under internal type names that are
not FHIR resource types (``x-billable-...``), so they work on SQLite and MongoDB alike,
never appear through the FHIR API (the REST layer rejects unknown types and the policy
hides them from system history), and get atomic single-use semantics for free from the
port's optimistic concurrency: ``insert`` fails if the record exists, ``consume`` wins
only once.
"""

from __future__ import annotations

from typing import Any

import orjson

from server.instants import now_instant
from server.storage.port import HistoryQuery, Store, VersionConflict, Write

CLIENT = "x-billable-client"
USER = "x-billable-user"
SIGNING_KEY = "x-billable-signing-key"
AUTH_CODE = "x-billable-auth-code"
REFRESH_TOKEN = "x-billable-refresh-token"
ASSERTION_JTI = "x-billable-assertion-jti"
REVOKED_TOKEN = "x-billable-revoked-token"
LAUNCH = "x-billable-launch"
GRANT = "x-billable-grant"  # what one authorization code led to (for replay revocation)
PICK_SESSION = "x-billable-pick-session"  # a patient picker bound to its request
ISSUER_PIN = "x-billable-issuer"  # the pinned public base URL (server.auth.setup)


class Records:
    """A tiny key-value view of the store for security records."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        current = await self.store.read(kind, key)
        if current is None or current.body is None:
            return None
        value: dict[str, Any] = orjson.loads(current.body)
        return value

    async def put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        """Create or replace."""
        for _attempt in range(20):
            current = await self.store.read(kind, key)
            actual = current.version if current else 0
            try:
                await self.store.commit([self._write(kind, key, actual, value)])
                return
            except VersionConflict:
                continue
        raise RuntimeError(f"{kind}/{key}: too many concurrent changes")

    async def insert(self, kind: str, key: str, value: dict[str, Any]) -> bool:
        """Create; ``False`` when the record already exists (or once existed)."""
        current = await self.store.read(kind, key)
        if current is not None:
            return False
        try:
            await self.store.commit([self._write(kind, key, 0, value)])
        except VersionConflict:
            return False
        return True

    async def consume(self, kind: str, key: str) -> dict[str, Any] | None:
        """Read and delete in one step; only one caller ever gets the value."""
        current = await self.store.read(kind, key)
        if current is None or current.body is None:
            return None
        tombstone = Write(
            kind,
            key,
            expected_version=current.version,
            version=current.version + 1,
            last_updated=now_instant(),
            body=None,
        )
        try:
            await self.store.commit([tombstone])
        except VersionConflict:
            return None
        value: dict[str, Any] = orjson.loads(current.body)
        return value

    async def delete(self, kind: str, key: str) -> bool:
        return await self.consume(kind, key) is not None

    async def list(self, kind: str) -> list[dict[str, Any]]:
        """Every live record of a kind (administration; small collections only)."""
        seen: dict[str, dict[str, Any] | None] = {}
        cursor: str | None = None
        while True:
            page = await self.store.history(HistoryQuery(kind, count=500, cursor=cursor))
            for version in page.versions:  # newest first: the first seen is current
                if version.id not in seen:
                    seen[version.id] = orjson.loads(version.body) if version.body else None
            cursor = page.next_cursor
            if not cursor:
                break
        return [v for v in seen.values() if v is not None]

    @staticmethod
    def _write(kind: str, key: str, expected: int, value: dict[str, Any]) -> Write:
        return Write(
            kind,
            key,
            expected_version=expected,
            version=expected + 1,
            last_updated=now_instant(),
            body=orjson.dumps(value),
        )
