"""Security records (clients, users, keys, codes, refresh tokens) kept in the FHIR store.

They go through the repository's records API (the one door to the store), under
internal type names that are not FHIR resource types (``x-billable-...``), so they work
on SQLite and MongoDB alike, never appear through the FHIR API (the policy never serves
them and searches never match them), and get atomic single-use semantics for free from
optimistic concurrency: ``insert`` fails if the record exists, ``consume`` wins once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.repository import Repository

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
    """A tiny key-value view of security records, over the repository's records API."""

    def __init__(self, repository: Repository) -> None:
        self._records = repository.records

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        found = await self._records.get(kind, key)
        return found[1] if found is not None else None

    async def put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        """Create or replace."""
        await self._records.put(kind, key, value)

    async def insert(self, kind: str, key: str, value: dict[str, Any]) -> bool:
        """Create; ``False`` when the record already exists (or once existed)."""
        return await self._records.insert(kind, key, value)

    async def consume(self, kind: str, key: str) -> dict[str, Any] | None:
        """Read and delete in one step; only one caller ever gets the value."""
        return await self._records.consume(kind, key)

    async def delete(self, kind: str, key: str) -> bool:
        return await self.consume(kind, key) is not None

    async def list(self, kind: str) -> list[dict[str, Any]]:
        """Every live record of a kind (administration; small collections only)."""
        return await self._records.list(kind)
