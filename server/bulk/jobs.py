"""Export job state as internal records of the FHIR store (SQLite and MongoDB alike).

Two records per job, under internal type names that the FHIR API never serves:

* ``x-billable-export-job``: what was asked, by whom, and the outcome (few versions);
* ``x-billable-export-progress``: the runner's lease and checkpoint (rewritten often).

Updates are compare-and-set on the store's version numbers (optimistic concurrency), so
two server processes on one MongoDB never run the same job at once: a runner holds a
lease on the progress record and renews it with every checkpoint; a checkpoint that
finds the record changed by someone else means the lease was lost and the runner stops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from server.instants import now_instant
from server.storage.port import HistoryQuery, Store, VersionConflict, Write

JOB = "x-billable-export-job"
PROGRESS = "x-billable-export-progress"

# Job states (``status`` of the job record).
ACCEPTED = "accepted"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"


def new_progress() -> dict[str, Any]:
    """The checkpoint of a job nobody has started: type 0, no position, no files."""
    return {
        "lease_owner": None,
        "lease_until": 0.0,
        "type_index": 0,
        "chunk": 0,
        "after": None,
        "files": [],  # {"type", "name", "count", "bytes"}; the last one may be open
        "errors": [],  # OperationOutcome resources for the error file
        "exported": 0,
        "started": None,
    }


class JobStore:
    """Create, read, compare-and-set and list job records through the storage port."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, kind: str, key: str) -> tuple[int, dict[str, Any]] | None:
        current = await self.store.read(kind, key)
        if current is None or current.body is None:
            return None
        value: dict[str, Any] = orjson.loads(current.body)
        return current.version, value

    async def create(self, kind: str, key: str, value: dict[str, Any]) -> None:
        await self.store.commit([_write(kind, key, 0, value)])

    async def replace(self, kind: str, key: str, version: int, value: dict[str, Any]) -> int:
        """Write ``value`` if the record is still at ``version``; the new version.

        Raises ``VersionConflict`` when someone else changed (or deleted) it first.
        """
        await self.store.commit([_write(kind, key, version, value)])
        return version + 1

    async def update(
        self, kind: str, key: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Read-change-write until it sticks; ``change`` returning None leaves it as is."""
        for _attempt in range(20):
            found = await self.get(kind, key)
            if found is None:
                return None
            version, value = found
            changed = change(value)
            if changed is None:
                return None
            try:
                await self.replace(kind, key, version, changed)
            except VersionConflict:
                continue
            return changed
        raise RuntimeError(f"{kind}/{key}: too many concurrent changes")

    async def delete(self, kind: str, key: str) -> None:
        for _attempt in range(20):
            current = await self.store.read(kind, key)
            if current is None or current.body is None:
                return
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
                return
            except VersionConflict:
                continue

    async def list_jobs(self) -> list[dict[str, Any]]:
        """Every live job record (a handful of versions per job, so a short scan)."""
        seen: dict[str, dict[str, Any] | None] = {}
        cursor: str | None = None
        while True:
            page = await self.store.history(HistoryQuery(JOB, count=500, cursor=cursor))
            for version in page.versions:  # newest first: the first seen is current
                if version.id not in seen:
                    seen[version.id] = orjson.loads(version.body) if version.body else None
            cursor = page.next_cursor
            if not cursor:
                break
        jobs = [v for v in seen.values() if v is not None]
        jobs.sort(key=lambda j: j.get("created", 0.0))
        return jobs


def _write(kind: str, key: str, expected: int, value: dict[str, Any]) -> Write:
    return Write(
        kind,
        key,
        expected_version=expected,
        version=expected + 1,
        last_updated=now_instant(),
        body=orjson.dumps(value),
    )
