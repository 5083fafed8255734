"""999 and 277CA acknowledgements: which claims were accepted, which were rejected.

* A 999 (005010X231A1) answers a functional group: AK1 names its GS06 (Billable's ISA13),
  AK2 a transaction set (ST02, one claim each), IK5 its verdict (A accepted, E accepted
  with errors, R/M/W/X rejected) and IK3/IK4 the segment and element at fault; AK9 R
  with no AK2 rejects the whole group.
* A 277CA (005010X214) answers per claim: TRN*2 carries the patient control number,
  STC01 the claim status category (A1/A2/A5 accepted; A3, A4, A6, A7, A8 rejected) and
  STC12 the payer's free-text reason.

Every verdict is added to the claim's record in the ledger; a rejection also puts the
claim back in the coders' queue as a review Task (the coding engine's ``review-claim``
code, focused on the Claim) with the reason. Ids are derived from the acknowledgement,
so re-importing it changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from server.errors import FhirError
from server.repository import Repository, RequestContext
from server.storage.port import Write
from server.x12.ledger import SENT, Ledger
from server.x12.posting import derived_id
from server.x12.reader import Seg

TASK_CODE = "https://billable.dev/fhir/CodeSystem/task-code"
REJECTED_999 = {"R", "M", "W", "X"}
ACCEPTED_277 = {"A1", "A2", "A5"}
REJECTED_277 = {"A3", "A4", "A6", "A7", "A8"}


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: str  # "999" or "277CA"
    source: str  # the acknowledgement's own identity (sender, ISA13, ...)
    claim_ref: tuple[str, str]  # ("pcn", value) or ("transaction", "ctl/0001")
    accepted: bool
    reason: str


@dataclass(slots=True)
class AckReport:
    accepted: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)


def verdicts_999(segs: list[Seg], source: str) -> list[Verdict]:
    out: list[Verdict] = []
    group: str | None = None
    transaction: str | None = None
    errors: list[str] = []
    answered: set[str] = set()
    for seg in segs:
        if seg.id == "AK1":
            group, answered = seg["AK102"], set()
        elif seg.id == "AK2":
            transaction, errors = seg["AK202"], []
        elif seg.id == "IK3":
            errors.append(
                f"segment {seg['IK301']} #{seg['IK302']} (loop {seg['IK303']}) error {seg['IK304']}"
            )
        elif seg.id == "IK4":
            errors.append(
                f"element {seg['IK401-1']} error {seg['IK403']}"
                + (f" value {seg['IK404']!r}" if seg["IK404"] else "")
            )
        elif seg.id == "IK5" and group is not None and transaction is not None:
            code = seg["IK501"]
            codes = [seg.element(n) for n in range(2, 7) if seg.element(n)]
            reason = f"999 IK5 {code}" + (f" ({', '.join(codes)})" if codes else "")
            if errors:
                reason += ": " + "; ".join(errors)
            out.append(
                Verdict(
                    "999",
                    source,
                    ("transaction", f"{group}/{transaction}"),
                    code not in REJECTED_999,
                    reason,
                )
            )
            answered.add(transaction)
            transaction = None
        elif seg.id == "AK9" and group is not None and seg["AK901"] == "R" and not answered:
            out.append(
                Verdict(
                    "999",
                    source,
                    ("group", group),
                    False,
                    f"999 AK9 R: functional group {group} rejected",
                )
            )
    return out


def verdicts_277(segs: list[Seg], source: str) -> list[Verdict]:
    out: list[Verdict] = []
    in_claim = False
    pcn: str | None = None
    for seg in segs:
        if seg.id == "HL":
            in_claim, pcn = seg["HL03"] == "PT", None
        elif in_claim and seg.id == "TRN" and seg["TRN01"] == "2":
            pcn = seg["TRN02"]
        elif in_claim and seg.id == "STC" and pcn:
            category = seg["STC01-1"]
            status = seg["STC01-2"]
            text = seg["STC12"]
            reason = f"277CA STC {category}:{status}" + (f" {text}" if text else "")
            if category in ACCEPTED_277 | REJECTED_277:
                out.append(Verdict("277CA", source, ("pcn", pcn), category in ACCEPTED_277, reason))
                pcn = None  # the first claim-level STC decides
    return out


class AckPoster:
    def __init__(self, repo: Repository, ctx: RequestContext) -> None:
        self.repo = repo
        self.ctx = ctx
        self.ledger = Ledger(repo)

    async def _claims_of(self, verdict: Verdict) -> list[str]:
        kind, value = verdict.claim_ref
        if kind == "pcn":
            claim_id = await self.ledger.claim_of_pcn(value) or value
            return [claim_id]
        group, _, transaction = value.partition("/")
        interchange = await self.ledger.interchange(int(group)) if group.isdigit() else None
        if interchange is None:
            return []
        transactions: dict[str, str] = interchange.get("transactions") or {}
        if kind == "group":
            return list(transactions.values())
        return [transactions[transaction]] if transaction in transactions else []

    async def plan(self, verdicts: list[Verdict], report: AckReport) -> list[Write]:
        writes: list[Write] = []
        for verdict in verdicts:
            claim_ids = await self._claims_of(verdict)
            if not claim_ids:
                report.unmatched.append(
                    f"{verdict.kind} {verdict.claim_ref[0]}"
                    f" {verdict.claim_ref[1]}: no claim Billable sent"
                )
            for claim_id in claim_ids:
                try:
                    claim_v = await self.repo.read(self.ctx, "Claim", claim_id)
                except FhirError as exc:
                    if exc.status not in (404, 410):
                        raise
                    report.unmatched.append(f"{verdict.kind}: Claim/{claim_id} is not known")
                    continue
                claim = orjson.loads(claim_v.body or b"{}")
                ack = {
                    "kind": verdict.kind,
                    "source": verdict.source,
                    "accepted": verdict.accepted,
                    "reason": verdict.reason,
                }
                writes += await self._ledger_write(claim_id, ack, writes)
                (report.accepted if verdict.accepted else report.rejected).append(
                    f"Claim/{claim_id}: {verdict.reason}"
                )
                if not verdict.accepted:
                    task = await self._task(claim_id, claim, verdict)
                    if task is not None:
                        writes.append(task)
        return writes

    async def _ledger_write(
        self, claim_id: str, ack: dict[str, Any], planned: list[Write]
    ) -> list[Write]:
        if any(w.resource_type == SENT and w.id == claim_id for w in planned):
            return []  # one ledger write per claim and file (a second verdict is rare)
        current = await self.ledger.sent(claim_id)
        version, value = current if current else (0, {"claim_id": claim_id, "acks": []})
        if ack in (value.get("acks") or []):
            return []
        value = {**value, "acks": [*(value.get("acks") or []), ack]}
        return [self.repo.records.write(SENT, claim_id, version, value)]

    async def _task(self, claim_id: str, claim: dict[str, Any], verdict: Verdict) -> Write | None:
        """The review Task that sends a rejected claim back to the coders."""
        tid = derived_id("x12-rejection", verdict.kind, verdict.source, claim_id)
        current = await self.repo.current_version(self.ctx, "update", "Task", tid)
        if current is not None and current.body is not None:
            return None  # this rejection is already in the queue (or was worked)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        task: dict[str, Any] = {
            "resourceType": "Task",
            "id": tid,
            "status": "requested",
            "intent": "order",
            "priority": "routine",
            "code": {
                "coding": [{"system": TASK_CODE, "code": "review-claim"}],
                "text": "Review a claim the payer or clearinghouse rejected",
            },
            "businessStatus": {"text": f"rejected ({verdict.kind})"},
            "description": f"Rejected by the {verdict.kind}: {verdict.reason}"[:1000],
            "focus": {"reference": f"Claim/{claim_id}"},
            "authoredOn": now,
            "lastModified": now,
        }
        if claim.get("patient"):
            task["for"] = claim["patient"]
        write, _ = self.repo.plan_write(self.ctx, "create", "Task", tid, task, 0)
        return write
