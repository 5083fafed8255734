"""Posting 835 remittances as FHIR: a ClaimResponse per claim payment (CLP), a
PaymentReconciliation per payment (BPR/TRN).

Ids are derived from what the payer says (payer id, payer claim control number, trace
number), so the same remittance always lands on the same resources: the whole file is
turned into the resources it implies, those are compared with what is stored, and only
the differences are committed, in one atomic commit through the repository (validation,
policy, Provenance). Re-importing a file therefore changes nothing. A reversal (CLP02 22)
names the payer claim control number of the payment it takes back: that ClaimResponse is
updated to ``cancelled``, never duplicated; a correction that follows re-posts it. A CLP
whose patient control number matches no Claim is reported and kept as an unmatched detail
of the PaymentReconciliation, never dropped.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from server.errors import FhirError
from server.repository import Repository, RequestContext
from server.storage.port import Write
from server.x12.ledger import Ledger
from server.x12.outbound import PAYER_ICN
from server.x12.remit import Adjustment, ClaimPayment, Remittance, ServicePayment

NAMESPACE = uuid.UUID("9a3f0f5e-0c1d-5e0b-8d1c-5b6f4a2e7c35")
PCN_SYSTEM = "https://billable.dev/fhir/sid/patient-control-number"
TRACE_SYSTEM = "https://billable.dev/fhir/sid/x12-payment-trace"
PAYER_ID_SYSTEM = "https://billable.dev/fhir/sid/x12-payer-id"
HL7_ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
C4BB_ADJUDICATION = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudication"
CAS_GROUP = "https://x12.org/codes/claim-adjustment-group-codes"
CARC = "https://x12.org/codes/claim-adjustment-reason-codes"
RARC = "https://x12.org/codes/remittance-advice-remark-codes"
X12_ADJUDICATION = "https://billable.dev/fhir/CodeSystem/x12-adjudication"
PAYMENT_TYPE = "http://terminology.hl7.org/CodeSystem/ex-paymenttype"
DETAIL_TYPE = "http://terminology.hl7.org/CodeSystem/payment-type"
GROUP_DISPLAY = {
    "CO": "Contractual Obligations",
    "CR": "Correction and Reversals",
    "OA": "Other adjustments",
    "PI": "Payor Initiated Reductions",
    "PR": "Patient Responsibility",
    "OI": "Other Insurance",
}
# CLP02 claim status (X12 1029).
CLAIM_STATUS = {
    "1": "Processed as primary",
    "2": "Processed as secondary",
    "3": "Processed as tertiary",
    "4": "Denied",
    "19": "Processed as primary, forwarded to additional payer(s)",
    "20": "Processed as secondary, forwarded to additional payer(s)",
    "21": "Processed as tertiary, forwarded to additional payer(s)",
    "22": "Reversal of previous payment",
    "23": "Not our claim, forwarded to additional payer(s)",
    "25": "Predetermination pricing only - no payment",
}


def derived_id(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "|".join(parts)))


def usd(value: Decimal) -> dict[str, Any]:
    return {"value": float(value), "currency": "USD"}


def _concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


@dataclass(slots=True)
class PostingReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    reversed: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    claims: int = 0


def _adjudication(adj: Adjustment) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "category": _concept(CAS_GROUP, adj.group, GROUP_DISPLAY.get(adj.group)),
        "reason": _concept(CARC, adj.reason),
        "amount": usd(adj.amount),
    }
    if adj.quantity is not None:
        entry["value"] = float(adj.quantity)
    return entry


def _remark(code: str) -> dict[str, Any]:
    return {
        "category": _concept(X12_ADJUDICATION, "remark", "Remittance advice remark"),
        "reason": _concept(RARC, code),
    }


def _patient_shares(adjustments: list[Adjustment]) -> list[dict[str, Any]]:
    """Deductible (PR 1), coinsurance (PR 2) and copay (PR 3) as the HL7/CARIN amounts a
    member-facing reader looks for."""
    out = []
    for reason, system, code, display in (
        ("1", HL7_ADJUDICATION, "deductible", "Deductible"),
        ("2", C4BB_ADJUDICATION, "coinsurance", "Co-insurance"),
        ("3", HL7_ADJUDICATION, "copay", "CoPay"),
    ):
        total = sum(
            (a.amount for a in adjustments if a.group == "PR" and a.reason == reason), Decimal(0)
        )
        if total:
            out.append({"category": _concept(system, code, display), "amount": usd(total)})
    return out


def _service_adjudication(svc: ServicePayment) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {
            "category": _concept(HL7_ADJUDICATION, "submitted", "Submitted Amount"),
            "amount": usd(svc.charge),
        },
    ]
    if svc.allowed is not None:
        out.append(
            {
                "category": _concept(HL7_ADJUDICATION, "eligible", "Eligible Amount"),
                "amount": usd(svc.allowed),
            }
        )
    out += _patient_shares(svc.adjustments)
    out.append(
        {
            "category": _concept(HL7_ADJUDICATION, "benefit", "Benefit Amount"),
            "amount": usd(svc.paid),
        }
    )
    out += [_adjudication(a) for a in svc.adjustments]
    out += [_remark(r) for r in svc.remarks]
    return out


def _item_sequence(svc: ServicePayment, claim: dict[str, Any], used: set[int]) -> int | None:
    """The Claim item an SVC pays: by the REF*6R the 837 sent, else the first unpaid item
    with the same procedure (or revenue) code."""
    items = claim.get("item") or []
    sequences = {int(i.get("sequence") or 0) for i in items}
    if svc.line_ref and svc.line_ref.isdigit() and int(svc.line_ref) in sequences:
        return int(svc.line_ref)
    for item in items:
        seq = int(item.get("sequence") or 0)
        codes = {c.get("code") for c in (item.get("productOrService") or {}).get("coding") or []}
        codes |= {c.get("code") for c in (item.get("revenue") or {}).get("coding") or []}
        if seq not in used and (svc.code in codes or (svc.revenue and svc.revenue in codes)):
            return seq
    return None


def claim_response(
    rid: str,
    rem: Remittance,
    clp: ClaimPayment,
    claim_id: str,
    claim: dict[str, Any],
    created: str,
    insurer: dict[str, Any],
) -> dict[str, Any]:
    used: set[int] = set()
    items: list[dict[str, Any]] = []
    add_items: list[dict[str, Any]] = []
    for svc in clp.services:
        seq = _item_sequence(svc, claim, used)
        adjudication = _service_adjudication(svc)
        if seq is None:
            add_items.append(
                {
                    "productOrService": _concept(
                        "http://www.ama-assn.org/go/cpt"
                        if svc.qualifier == "HC"
                        else X12_ADJUDICATION,
                        svc.code or svc.revenue or "unknown",
                    ),
                    "adjudication": adjudication,
                }
            )
            continue
        used.add(seq)
        items.append({"itemSequence": seq, "adjudication": adjudication})
    insurance = claim.get("insurance") or [{}]
    focal = next((i for i in insurance if i.get("focal")), insurance[0])
    resource: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "id": rid,
        "identifier": [
            {"system": PAYER_ICN, "value": clp.payer_icn or clp.pcn},
            {"system": PCN_SYSTEM, "value": clp.pcn},
        ],
        "status": "active",
        "type": claim["type"],
        "use": "claim",
        "patient": claim["patient"],
        "created": created,
        "insurer": insurer,
        "request": {"reference": f"Claim/{claim_id}"},
        "outcome": "complete",
        "disposition": f"835 CLP02 {clp.status}: {CLAIM_STATUS.get(clp.status, 'unknown')}",
    }
    if claim.get("provider"):
        resource["requestor"] = claim["provider"]
    if items:
        resource["item"] = items
    if add_items:
        resource["addItem"] = add_items
    header = [_adjudication(a) for a in clp.adjustments] + [_remark(r) for r in clp.remarks]
    if header:
        resource["adjudication"] = header
    resource["total"] = [
        {
            "category": _concept(HL7_ADJUDICATION, "submitted", "Submitted Amount"),
            "amount": usd(clp.charge),
        },
        {
            "category": _concept(HL7_ADJUDICATION, "benefit", "Benefit Amount"),
            "amount": usd(clp.paid),
        },
        {
            "category": _concept(C4BB_ADJUDICATION, "memberliability", "Member liability"),
            "amount": usd(clp.patient_responsibility),
        },
    ]
    payment: dict[str, Any] = {
        "type": _concept(PAYMENT_TYPE, "complete", "Complete"),
        "amount": usd(clp.paid),
    }
    if rem.payment_date:
        payment["date"] = rem.payment_date
    if rem.trace:
        payment["identifier"] = {"system": TRACE_SYSTEM, "value": rem.trace}
    resource["payment"] = payment
    if focal.get("coverage"):
        resource["insurance"] = [{"sequence": 1, "focal": True, "coverage": focal["coverage"]}]
    return resource


def _comparable(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "meta"}


class Poster:
    """Posts parsed 835s for one request context."""

    def __init__(self, repo: Repository, ctx: RequestContext) -> None:
        self.repo = repo
        self.ctx = ctx
        self.ledger = Ledger(repo)

    async def _claim_of(self, pcn: str) -> tuple[str, dict[str, Any]] | None:
        for claim_id in [await self.ledger.claim_of_pcn(pcn), pcn]:
            if not claim_id:
                continue
            try:
                version = await self.repo.read(self.ctx, "Claim", claim_id)
            except FhirError as exc:
                if exc.status in (404, 410):
                    continue
                raise
            body: dict[str, Any] = orjson.loads(version.body or b"{}")
            return claim_id, body
        return None

    async def _stored(self, rtype: str, rid: str) -> tuple[int, dict[str, Any] | None]:
        current = await self.repo.current_version(self.ctx, "update", rtype, rid)
        if current is None:
            return 0, None
        body = orjson.loads(current.body) if current.body else None
        return current.version, body

    async def plan(self, remittances: list[Remittance], report: PostingReport) -> list[Write]:
        """The writes that make the store hold what ``remittances`` say (none when it does)."""
        desired: dict[tuple[str, str], dict[str, Any]] = {}
        for rem in remittances:
            await self._plan_remittance(rem, desired, report)
        writes: list[Write] = []
        for (rtype, rid), resource in desired.items():
            version, stored = await self._stored(rtype, rid)
            if stored is not None and _comparable(stored) == resource:
                report.unchanged.append(f"{rtype}/{rid}")
                continue
            interaction = "update" if version else "create"
            write, _ = self.repo.plan_write(self.ctx, interaction, rtype, rid, resource, version)
            writes.append(write)
            (report.updated if version else report.created).append(f"{rtype}/{rid}")
        return writes

    async def _plan_remittance(
        self,
        rem: Remittance,
        desired: dict[tuple[str, str], dict[str, Any]],
        report: PostingReport,
    ) -> None:
        payer = rem.payer_id or rem.payer_name or "unknown-payer"
        created = rem.production_date or rem.payment_date or "1970-01-01"
        insurer: dict[str, Any] = {"display": rem.payer_name or payer}
        if rem.payer_id:
            insurer["identifier"] = {"system": PAYER_ID_SYSTEM, "value": rem.payer_id}
        pr_id = derived_id("835-payment", payer, rem.trace or rem.control)
        details: list[dict[str, Any]] = []
        notes: list[dict[str, Any]] = []
        for clp in rem.claims:
            report.claims += 1
            cr_id = derived_id("835-claim", payer, clp.payer_icn or clp.pcn)
            detail: dict[str, Any] = {
                "identifier": {"system": PCN_SYSTEM, "value": clp.pcn},
                "type": _concept(DETAIL_TYPE, "adjustment" if clp.reversal else "payment"),
                "amount": usd(clp.paid),
            }
            if rem.payment_date:
                detail["date"] = rem.payment_date
            found = await self._claim_of(clp.pcn)
            if found is None:
                report.unmatched.append(
                    f"CLP01 {clp.pcn!r} (payer claim control number {clp.payer_icn!r},"
                    f" paid {clp.paid}) at segment CLP #{clp.position} matches no Claim"
                )
                notes.append(
                    {
                        "type": "display",
                        "text": f"Unmatched claim payment: patient"
                        f" control number {clp.pcn}, paid {clp.paid}",
                    }
                )
                details.append(detail)
                continue
            claim_id, claim = found
            detail["request"] = {"reference": f"Claim/{claim_id}"}
            detail["response"] = {"reference": f"ClaimResponse/{cr_id}"}
            details.append(detail)
            key = ("ClaimResponse", cr_id)
            if clp.reversal:
                target = desired.get(key)
                if target is None:
                    _version, target = await self._stored("ClaimResponse", cr_id)
                    target = _comparable(target) if target else None
                if target is None:
                    report.warnings.append(
                        f"CLP #{clp.position}: reversal (CLP02 22) of payer claim control number"
                        f" {clp.payer_icn!r} for Claim/{claim_id}: no posting of it is known"
                    )
                    continue
                target = {**target, "status": "cancelled"}
                target["processNote"] = [
                    {
                        "type": "display",
                        "text": f"Reversed by the 835 payment {rem.trace} of {payer} (CLP02 22)",
                    }
                ]
                desired[key] = target
                report.reversed.append(f"ClaimResponse/{cr_id}")
                continue
            desired[key] = claim_response(cr_id, rem, clp, claim_id, claim, created, insurer)
        paid = sum((c.paid for c in rem.claims), Decimal(0)) - sum(
            (p.amount for p in rem.provider_adjustments), Decimal(0)
        )
        total = rem.total if rem.credit else -rem.total
        if paid != total:
            report.warnings.append(
                f"835 {rem.control}: BPR02 {total} differs from the claim payments less provider"
                f" adjustments ({paid})"
            )
        for plb in rem.provider_adjustments:
            details.append(
                {
                    "identifier": {
                        "system": "https://x12.org/codes/provider-adjustment-reason",
                        "value": f"{plb.reason}:{plb.reference}",
                    },
                    "type": _concept(DETAIL_TYPE, "adjustment"),
                    "amount": usd(-plb.amount),
                }
            )
        reconciliation: dict[str, Any] = {
            "resourceType": "PaymentReconciliation",
            "id": pr_id,
            "identifier": [{"system": TRACE_SYSTEM, "value": rem.trace or rem.control}],
            "status": "active",
            "created": created,
            "paymentIssuer": insurer,
            "outcome": "complete",
            "disposition": f"835 remittance {rem.trace} ({rem.method or 'no payment method'})"
            f" from {rem.payer_name or payer}",
            "paymentDate": rem.payment_date or created,
            "paymentAmount": usd(total),
            "paymentIdentifier": {"system": TRACE_SYSTEM, "value": rem.trace or rem.control},
        }
        if details:
            reconciliation["detail"] = details
        if notes:
            reconciliation["processNote"] = notes
        desired[("PaymentReconciliation", pr_id)] = reconciliation
