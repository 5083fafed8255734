"""What Billable has sent and heard back, kept as internal records (``repo.records``).

* ``x-billable-x12-sent`` (key: Claim id): the last 837 of the claim in a batch: its
  digest (so an unchanged claim is not sent again), frequency, interchange and
  transaction control numbers, and the acknowledgements (999/277CA) received for it.
* ``x-billable-x12-pcn`` (key: patient control number): the Claim a CLM01/CLP01 names,
  for ids longer than the 20 characters CLM01 allows.
* ``x-billable-x12-interchange`` (key: ISA13): the claims of each transaction set, so a
  999 that answers a group and transaction set finds its claims.
"""

from __future__ import annotations

from typing import Any

from server.repository import Repository
from server.storage.port import VersionConflict, Write

SENT = "x-billable-x12-sent"
PCN = "x-billable-x12-pcn"
INTERCHANGE = "x-billable-x12-interchange"


class Ledger:
    def __init__(self, repo: Repository) -> None:
        self.records = repo.records

    async def sent(self, claim_id: str) -> tuple[int, dict[str, Any]] | None:
        return await self.records.get(SENT, claim_id)

    async def claim_of_pcn(self, pcn: str) -> str | None:
        found = await self.records.get(PCN, pcn)
        return str(found[1]["claim"]) if found else None

    async def interchange(self, control_number: int) -> dict[str, Any] | None:
        found = await self.records.get(INTERCHANGE, str(control_number))
        return found[1] if found else None

    async def sent_writes(self, entries: dict[str, dict[str, Any]]) -> list[Write]:
        """The records of a batch just written, one per claim."""
        writes = []
        for claim_id, entry in entries.items():
            current = await self.records.get(SENT, claim_id)
            expected = current[0] if current else 0
            acks = current[1].get("acks", []) if current else []
            writes.append(self.records.write(SENT, claim_id, expected, {**entry, "acks": acks}))
        return writes

    async def remember_interchange(
        self, control_number: int, kind: str, claims: list[str], pcns: dict[str, str]
    ) -> None:
        """Which claim each transaction set of a new interchange carries (for its 999),
        and the claims' patient control numbers (for 277CAs and 835s)."""
        transactions = {f"{n:04d}": claim_id for n, claim_id in enumerate(claims, start=1)}
        writes = [
            self.records.write(
                INTERCHANGE, str(control_number), 0, {"kind": kind, "transactions": transactions}
            )
        ]
        for pcn, claim_id in pcns.items():
            if await self.records.read(PCN, pcn) is None:
                writes.append(self.records.write(PCN, pcn, 0, {"claim": claim_id}))
        try:
            await self.records.commit(writes)
        except VersionConflict:  # a pcn recorded meanwhile: the same mapping; retry without
            await self.records.commit(writes[:1])
