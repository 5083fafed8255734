"""Interchange control numbers (ISA13, also used as GS06 and in BHT03) that never repeat.

Trading partners reject an interchange whose control number they have seen before, so
the counter is a record in the store (``x-billable-x12-control``), advanced by
compare-and-set through the repository's records API: two processes allocating at once
never get the same number, and a restart continues where the last run stopped. A number
is consumed even if the document it was allocated for is never sent; gaps are harmless,
repeats are not.
"""

from __future__ import annotations

from server.repository import Repository
from server.storage.port import VersionConflict

CONTROL = "x-billable-x12-control"
INTERCHANGE = "interchange"
MAX_CONTROL = 999_999_999  # ISA13 is nine digits
MAX_RETRIES = 50


class ControlNumbersExhausted(RuntimeError):
    """Nine digits are used up: a new sender id (ISA06) is needed."""


async def next_control_number(repo: Repository, key: str = INTERCHANGE) -> int:
    """The next unused control number (1, 2, ...), persisted before it is returned."""
    for _attempt in range(MAX_RETRIES):
        current = await repo.records.get(CONTROL, key)
        version, last = (current[0], int(current[1]["last"])) if current else (0, 0)
        number = last + 1
        if number > MAX_CONTROL:
            raise ControlNumbersExhausted(f"X12 control numbers of {key!r} are used up")
        try:
            await repo.records.commit([repo.records.write(CONTROL, key, version, {"last": number})])
        except VersionConflict:
            continue
        return number
    raise RuntimeError("X12 control number: too many concurrent allocations")
