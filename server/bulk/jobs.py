"""Export job state as internal records of the FHIR store (SQLite and MongoDB alike).

Two records per job, under internal type names that the FHIR API never serves:

* ``x-billable-export-job``: what was asked, by whom, and the outcome (few versions);
* ``x-billable-export-progress``: the runner's lease and checkpoint (rewritten often).

Updates are compare-and-set on the store's version numbers (through the repository's
records API) (optimistic concurrency), so
two server processes on one MongoDB never run the same job at once: a runner holds a
lease on the progress record and renews it with every checkpoint; a checkpoint that
finds the record changed by someone else means the lease was lost and the runner stops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from server.storage.port import VersionConflict

if TYPE_CHECKING:
    from server.repository import InternalRecords

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
    """Create, read, compare-and-set and list job records through the repository's
    records API (``server.repository.records``)."""

    def __init__(self, records: InternalRecords) -> None:
        self.records = records

    async def get(self, kind: str, key: str) -> tuple[int, dict[str, Any]] | None:
        return await self.records.get(kind, key)

    async def create(self, kind: str, key: str, value: dict[str, Any]) -> None:
        await self.records.commit([self.records.write(kind, key, 0, value)])

    async def replace(self, kind: str, key: str, version: int, value: dict[str, Any]) -> int:
        """Write ``value`` if the record is still at ``version``; the new version.

        Raises ``VersionConflict`` when someone else changed (or deleted) it first.
        """
        return await self.records.replace(kind, key, version, value)

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
        await self.records.delete(kind, key)

    async def list_jobs(self) -> list[dict[str, Any]]:
        """Every live job record (a handful of versions per job, so a short scan)."""
        jobs = await self.records.list(JOB)
        jobs.sort(key=lambda j: j.get("created", 0.0))
        return jobs
