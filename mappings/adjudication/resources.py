"""ClaimResponse and ExplanationOfBenefit built from an adjudication ``Decision``.

The EOB follows the CARIN Consumer Directed Payer Data Exchange guide (Blue Button,
STU 2) profile ``C4BB-ExplanationOfBenefit-Professional-NonClinician``: adjudication
amounts use the HL7 adjudication codes and the C4BBAdjudication codes, the denial reason
is its own slice (C4BBAdjudicationDiscriminator ``denialreason`` with the CARC), allowed
units another (``allowedunits``), and the network status of the benefit a third
(C4BBPayerAdjudicationStatus ``innetwork``/``outofnetwork``).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from mappings.adjudication.engine import Decision, LineResult

HL7_ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
C4BB_ADJUDICATION = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudication"
C4BB_DISCRIMINATOR = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudicationDiscriminator"
C4BB_STATUS = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBPayerAdjudicationStatus"
C4BB_SUPPORTING_INFO = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBSupportingInfoType"
C4BB_IDENTIFIER_TYPE = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBIdentifierType"
CARC = "https://x12.org/codes/claim-adjustment-reason-codes"
PAYMENT_TYPE = "http://terminology.hl7.org/CodeSystem/ex-paymenttype"
PROFILE_PROFESSIONAL = (
    "http://hl7.org/fhir/us/carin-bb/StructureDefinition/"
    "C4BB-ExplanationOfBenefit-Professional-NonClinician"
)
PROFILE_INSTITUTIONAL = (
    "http://hl7.org/fhir/us/carin-bb/StructureDefinition/"
    "C4BB-ExplanationOfBenefit-Outpatient-Institutional"
)
IDENTIFIER_SYSTEM = "https://billable.dev/fhir/sid/claim-response"

# (field of LineResult, system, code, display), in the order a member reads them.
AMOUNTS = (
    ("submitted", HL7_ADJUDICATION, "submitted", "Submitted Amount"),
    ("allowed", HL7_ADJUDICATION, "eligible", "Eligible Amount"),
    ("deductible", HL7_ADJUDICATION, "deductible", "Deductible"),
    ("copay", HL7_ADJUDICATION, "copay", "CoPay"),
    ("coinsurance", C4BB_ADJUDICATION, "coinsurance", "Co-insurance"),
    ("benefit", HL7_ADJUDICATION, "benefit", "Benefit Amount"),
    ("benefit", C4BB_ADJUDICATION, "paidtoprovider", "Paid to provider"),
    ("patient", C4BB_ADJUDICATION, "paidbypatient", "Paid by patient"),
    ("member_liability", C4BB_ADJUDICATION, "memberliability", "Member liability"),
    ("noncovered", C4BB_ADJUDICATION, "noncovered", "Noncovered"),
    ("discount", C4BB_ADJUDICATION, "discount", "Discount"),
)
CARC_DISPLAY = {
    "16": "Claim lacks information needed to adjudicate",
    "18": "Exact duplicate claim or service",
    "27": "Service after coverage ended",
    "29": "The time limit for filing has expired",
    "45": "Charge exceeds the fee schedule or maximum allowable",
    "50": "Not deemed medically necessary by the payer",
    "96": "Non-covered charge",
    "97": "Paid as part of another service on the claim (bundled)",
    "151": "Number of services not supported (units)",
    "181": "Procedure code not valid for the date of service",
    "204": "Service not covered by the patient's benefit plan",
    "236": "Procedure or modifier combination not compatible with another that day (NCCI)",
}


def usd(value: Decimal) -> dict[str, Any]:
    return {"value": float(value), "currency": "USD"}


def _concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def _line_adjudications(line: LineResult, in_network: bool, carin: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for attr, system, code, display in AMOUNTS:
        if not carin and system != HL7_ADJUDICATION:
            continue
        amount: Decimal = getattr(line, attr)
        if attr in ("noncovered", "discount", "member_liability") and amount == 0:
            continue
        entry: dict[str, Any] = {"category": _concept(system, code, display), "amount": usd(amount)}
        if attr == "discount":
            entry["reason"] = _concept(CARC, "45", CARC_DISPLAY["45"])
        out.append(entry)
    if line.denial is not None:
        category = (
            _concept(C4BB_DISCRIMINATOR, "denialreason", "Denial Reason")
            if carin
            else _concept(HL7_ADJUDICATION, "benefit", "Benefit Amount")
        )
        denial: dict[str, Any] = {
            "category": category,
            "reason": {
                "coding": [
                    {"system": CARC, "code": line.denial.carc, "display": _carc(line.denial.carc)}
                ],
                "text": line.denial.message,
            },
        }
        if not carin:
            denial["amount"] = usd(Decimal(0))
        out.append(denial)
    if carin:
        out.append(
            {
                "category": _concept(C4BB_DISCRIMINATOR, "allowedunits", "allowed units"),
                "value": float(line.allowed_units),
            }
        )
        status = "innetwork" if in_network else "outofnetwork"
        out.append({"category": _concept(C4BB_STATUS, status)})
    return out


def _carc(code: str) -> str:
    return CARC_DISPLAY.get(code, f"CARC {code}")


def _totals(decision: Decision, carin: bool) -> list[dict[str, Any]]:
    totals: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for attr, system, code, display in AMOUNTS:
        if not carin and system != HL7_ADJUDICATION:
            continue
        if (system, code) in seen:
            continue
        seen.add((system, code))
        amount = decision.total(attr)
        if attr in ("noncovered", "discount", "member_liability") and amount == 0:
            continue
        totals.append({"category": _concept(system, code, display), "amount": usd(amount)})
    if carin:
        status = "innetwork" if decision.in_network else "outofnetwork"
        totals.append({"category": _concept(C4BB_STATUS, status), "amount": usd(Decimal(0))})
    return totals


def _process_notes(decision: Decision) -> list[dict[str, Any]]:
    notes = [
        f"Line {line.sequence}: CARC {line.denial.carc} ({line.denial.group}): "
        f"{line.denial.message}"
        for line in decision.lines
        if line.denial is not None
    ] + decision.notes
    return [{"number": i + 1, "type": "display", "text": text} for i, text in enumerate(notes)]


def disposition(decision: Decision) -> str:
    denied = sum(1 for line in decision.lines if line.denial is not None)
    total = len(decision.lines)
    if denied == 0:
        return f"All {total} lines adjudicated and payable"
    if denied == total:
        return f"Claim denied: all {total} lines denied"
    return f"{total - denied} of {total} lines payable, {denied} denied"


def payer_status(decision: Decision) -> str:
    denied = sum(1 for line in decision.lines if line.denial is not None)
    if denied == 0:
        return "paid"
    return "denied" if denied == len(decision.lines) else "partiallypaid"


def claim_response(
    *,
    rid: str,
    claim: dict[str, Any],
    claim_ref: str,
    coverage_ref: dict[str, Any],
    insurer: dict[str, Any],
    decision: Decision,
    created: str,
    today: date,
) -> dict[str, Any]:
    """The ClaimResponse a payer returns for ``claim``."""
    resource: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "id": rid,
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": rid}],
        "status": "active",
        "type": claim["type"],
        "use": "claim",
        "patient": claim["patient"],
        "created": created,
        "insurer": insurer,
        "requestor": claim.get("provider"),
        "request": {"reference": claim_ref},
        "outcome": "complete",
        "disposition": disposition(decision),
        "item": [
            {
                "itemSequence": line.sequence,
                "adjudication": _line_adjudications(line, decision.in_network, carin=True),
            }
            for line in decision.lines
        ],
        "total": _totals(decision, carin=True),
        "payment": {
            "type": _concept(PAYMENT_TYPE, "complete", "Complete"),
            "date": today.isoformat(),
            "amount": usd(decision.total("benefit")),
        },
        "insurance": [{"sequence": 1, "focal": True, "coverage": coverage_ref}],
    }
    notes = _process_notes(decision)
    if notes:
        resource["processNote"] = notes
    if resource["requestor"] is None:
        del resource["requestor"]
    return resource


def error_response(
    *,
    rid: str,
    claim: dict[str, Any],
    claim_ref: str,
    insurer: dict[str, Any],
    coverage_ref: dict[str, Any],
    message: str,
    created: str,
) -> dict[str, Any]:
    """A ClaimResponse with outcome ``error``: the claim could not be adjudicated."""
    return {
        "resourceType": "ClaimResponse",
        "id": rid,
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": rid}],
        "status": "active",
        "type": claim["type"],
        "use": "claim",
        "patient": claim["patient"],
        "created": created,
        "insurer": insurer,
        "request": {"reference": claim_ref},
        "outcome": "error",
        "disposition": message,
        "insurance": [{"sequence": 1, "focal": True, "coverage": coverage_ref}],
        "error": [{"code": _concept(CARC, "16", _carc("16"))}],
        "processNote": [{"number": 1, "type": "display", "text": message}],
    }


PAYEE_TYPE = "http://terminology.hl7.org/CodeSystem/payeetype"


def explanation_of_benefit(
    *,
    rid: str,
    claim: dict[str, Any],
    claim_ref: str,
    claim_response_id: str,
    coverage_ref: dict[str, Any],
    insurer: dict[str, Any],
    decision: Decision,
    created: str,
    today: date,
    received: str,
) -> dict[str, Any]:
    """The member's EOB, shaped as CARIN BB's Professional NonClinician profile."""
    institutional = any(
        c.get("code") == "institutional" for c in (claim.get("type") or {}).get("coding", [])
    )
    items = []
    claim_items = {item.get("sequence"): item for item in claim.get("item") or []}
    for line in decision.lines:
        source = claim_items.get(line.sequence, {})
        item: dict[str, Any] = {"sequence": line.sequence}
        for key in (
            "diagnosisSequence",
            "productOrService",
            "modifier",
            "servicedDate",
            "servicedPeriod",
            "locationCodeableConcept",
            "quantity",
            "unitPrice",
            "net",
        ):
            if key in source:
                item[key] = source[key]
        item["adjudication"] = _line_adjudications(line, decision.in_network, carin=True)
        items.append(item)
    period = claim.get("billablePeriod") or _period_of(claim)
    network_status = "contracted" if decision.in_network else "noncontracted"
    resource: dict[str, Any] = {
        "resourceType": "ExplanationOfBenefit",
        "id": rid,
        "meta": {"profile": [PROFILE_INSTITUTIONAL if institutional else PROFILE_PROFESSIONAL]},
        "identifier": [
            {
                "type": _concept(C4BB_IDENTIFIER_TYPE, "uc", "Unique Claim ID"),
                "system": IDENTIFIER_SYSTEM,
                "value": claim_response_id,
            }
        ],
        "status": "active",
        "type": claim["type"],
        "use": "claim",
        "patient": claim["patient"],
        "billablePeriod": period,
        "created": created,
        "insurer": insurer,
        "provider": claim.get("provider") or {"display": "unknown provider"},
        "claim": {"reference": claim_ref},
        "claimResponse": {"reference": f"ClaimResponse/{claim_response_id}"},
        "outcome": "complete",
        "disposition": disposition(decision),
        # CARIN payee (must-support): the billing provider unless the Claim says otherwise.
        "payee": claim.get("payee")
        or {
            "type": _concept(PAYEE_TYPE, "provider", "Provider"),
            "party": claim.get("provider") or {"display": "unknown provider"},
        },
        "supportingInfo": [
            {
                "sequence": 1,
                "category": _concept(C4BB_SUPPORTING_INFO, "clmrecvddate", "Claim Received Date"),
                "timingDate": received,
            },
            {
                "sequence": 2,
                "category": _concept(
                    C4BB_SUPPORTING_INFO,
                    "billingnetworkcontractingstatus",
                    "Billing Network Contracting Status",
                ),
                "code": _concept(C4BB_STATUS, network_status),
            },
        ],
        "insurance": [{"focal": True, "coverage": coverage_ref}],
        "item": items,
        "adjudication": [
            {"category": _concept(C4BB_STATUS, payer_status(decision))},
        ],
        "total": _totals(decision, carin=True),
        "payment": {
            "type": _concept(PAYMENT_TYPE, "complete", "Complete"),
            "date": today.isoformat(),
            "amount": usd(decision.total("benefit")),
        },
    }
    for key in ("careTeam", "diagnosis", "facility", "related", "referral"):
        if claim.get(key):
            resource[key] = claim[key]
    if "diagnosis" in resource:
        # EOB.diagnosis has the Claim's shape, minus packageCode/onAdmission nuances.
        resource["diagnosis"] = [
            {k: v for k, v in d.items() if k in ("sequence", "diagnosisCodeableConcept", "type")}
            for d in resource["diagnosis"]
        ]
    notes = _process_notes(decision)
    if notes:
        resource["processNote"] = notes
    return resource


def _period_of(claim: dict[str, Any]) -> dict[str, str]:
    days = sorted(
        str(item["servicedDate"]) for item in claim.get("item") or [] if item.get("servicedDate")
    )
    if not days:
        created = str(claim.get("created", ""))[:10]
        return {"start": created, "end": created}
    return {"start": days[0], "end": days[-1]}
