"""ClaimResponse and ExplanationOfBenefit built from an adjudication ``Decision``.

The EOB follows the CARIN Consumer Directed Payer Data Exchange guide (Blue Button) STU2
2.0.0, with the profile of its kind: ``C4BB-ExplanationOfBenefit-Professional-NonClinician``
for professional claims, ``-Inpatient-Institutional`` / ``-Outpatient-Institutional`` for
institutional ones (``meta.profile`` names the version, as STU2's invariants require).
Adjudication amounts use the HL7 adjudication codes and the C4BBAdjudication codes; the
other line adjudications are slices keyed on a C4BBAdjudicationDiscriminator category:
``adjustmentreason`` (the denial's CARC), ``allowedunits`` and ``benefitpaymentstatus``
(C4BBPayerAdjudicationStatus ``innetwork``/``outofnetwork``; on the lines of a
professional EOB, in the header of an institutional one). The header's
``billingnetworkstatus`` replaces STU1's ``billingnetworkcontractingstatus`` supporting
info, and ``payment.type`` is the payer's claim payment status (paid, denied,
partiallypaid). ``tests/conformance`` checks every kind with HAPI FHIR's validator.
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
C4BB_DIAGNOSIS_TYPE = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBClaimDiagnosisType"
C4BB_PROCEDURE_TYPE = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBClaimProcedureType"
C4BB_INSTITUTIONAL_SUBTYPE = (
    "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBInstitutionalClaimSubType"
)
HL7_DIAGNOSIS_TYPE = "http://terminology.hl7.org/CodeSystem/ex-diagnosistype"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
REVENUE = "https://www.nubc.org/CodeSystem/RevenueCodes"
CARIN_VERSION = "2.0.0"
_CARIN_SD = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/"
PROFILES = {
    "professional": f"{_CARIN_SD}C4BB-ExplanationOfBenefit-Professional-NonClinician",
    "inpatient": f"{_CARIN_SD}C4BB-ExplanationOfBenefit-Inpatient-Institutional",
    "outpatient": f"{_CARIN_SD}C4BB-ExplanationOfBenefit-Outpatient-Institutional",
}
PROFILE_PROFESSIONAL = f"{PROFILES['professional']}|{CARIN_VERSION}"
PROFILE_INPATIENT = f"{PROFILES['inpatient']}|{CARIN_VERSION}"
PROFILE_OUTPATIENT = f"{PROFILES['outpatient']}|{CARIN_VERSION}"
# Places of service (CMS POS) of an inpatient stay, when the Claim has no subType.
INPATIENT_POS = {"21", "51", "61"}
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


def _network_status(in_network: bool) -> dict[str, Any]:
    code = "innetwork" if in_network else "outofnetwork"
    return _concept(C4BB_STATUS, code, "In Network" if in_network else "Out Of Network")


def _status_slice(slice_code: str, display: str, in_network: bool) -> dict[str, Any]:
    """A C4BBAdjudicationDiscriminator slice whose reason is the network status."""
    return {
        "category": _concept(C4BB_DISCRIMINATOR, slice_code, display),
        "reason": _network_status(in_network),
    }


def _line_adjudications(
    line: LineResult, in_network: bool, carin: bool, line_status: bool = True
) -> list[dict[str, Any]]:
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
            _concept(C4BB_DISCRIMINATOR, "adjustmentreason", "Adjustment Reason")
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
        if line_status:
            out.append(_status_slice("benefitpaymentstatus", "Benefit Payment Status", in_network))
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
    """The payer's claim payment status (CARIN's C4BBPayerClaimPaymentStatusCode)."""
    denied = sum(1 for line in decision.lines if line.denial is not None)
    if denied == 0:
        return "paid"
    return "denied" if denied == len(decision.lines) else "partiallypaid"


PAYMENT_STATUS_DISPLAY = {"paid": "Paid", "denied": "Denied", "partiallypaid": "Partially Paid"}


def claim_kind(claim: dict[str, Any]) -> str:
    """``professional``, ``inpatient`` or ``outpatient`` (institutional): the CARIN EOB
    profile the claim's EOB must meet. Institutional claims say which in ``subType``
    (C4BBInstitutionalClaimSubType, as the coding engine writes it); without one, an
    inpatient place of service on the lines decides."""
    types = {c.get("code") for c in (claim.get("type") or {}).get("coding", [])}
    if "institutional" not in types:
        return "professional"
    for coding in (claim.get("subType") or {}).get("coding", []):
        if coding.get("code") in ("inpatient", "outpatient"):
            return str(coding["code"])
    for item in claim.get("item") or []:
        for coding in (item.get("locationCodeableConcept") or {}).get("coding", []):
            if coding.get("code") in INPATIENT_POS:
                return "inpatient"
    return "outpatient"


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
    """The member's EOB, shaped as the CARIN BB STU2 profile of the claim's kind."""
    kind = claim_kind(claim)
    professional = kind == "professional"
    claim_items = {item.get("sequence"): item for item in claim.get("item") or []}
    items = []
    for line in decision.lines:
        items.append(
            _eob_item(
                claim_items.get(line.sequence, {}),
                line,
                decision.in_network,
                professional,
            )
        )
    period = claim.get("billablePeriod") or _period_of(claim)
    header = [_status_slice("billingnetworkstatus", "Billing Network Status", decision.in_network)]
    if not professional:
        # Institutional profiles carry the benefit payment status once, in the header.
        header.append(
            _status_slice("benefitpaymentstatus", "Benefit Payment Status", decision.in_network)
        )
    status = payer_status(decision)
    resource: dict[str, Any] = {
        "resourceType": "ExplanationOfBenefit",
        "id": rid,
        "meta": {"profile": [f"{PROFILES[kind]}|{CARIN_VERSION}"]},
        "identifier": [
            {
                "type": _concept(C4BB_IDENTIFIER_TYPE, "uc", "Unique Claim ID"),
                "system": IDENTIFIER_SYSTEM,
                "value": claim_response_id,
            }
        ],
        "status": "active",
        "type": claim["type"],
    }
    if not professional:
        resource["subType"] = _concept(
            C4BB_INSTITUTIONAL_SUBTYPE, kind, "Inpatient" if kind == "inpatient" else "Outpatient"
        )
    resource.update(
        {
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
            "supportingInfo": _supporting_info(kind, received, period),
            "insurance": [{"focal": True, "coverage": coverage_ref}],
            "item": items,
            "adjudication": header,
            "total": _totals(decision, carin=True),
            "payment": {
                "type": _concept(C4BB_STATUS, status, PAYMENT_STATUS_DISPLAY[status]),
                "date": today.isoformat(),
                "amount": usd(decision.total("benefit")),
            },
        }
    )
    for key in ("careTeam", "facility", "related", "referral"):
        if claim.get(key):
            resource[key] = claim[key]
    if claim.get("diagnosis"):
        resource["diagnosis"] = _diagnoses(claim["diagnosis"], professional)
    if claim.get("procedure") and not professional:
        resource["procedure"] = _procedures(claim["procedure"])
    notes = _process_notes(decision)
    if notes:
        resource["processNote"] = notes
    return resource


def _eob_item(
    source: dict[str, Any], line: LineResult, in_network: bool, professional: bool
) -> dict[str, Any]:
    item: dict[str, Any] = {"sequence": line.sequence}
    for key in (
        "diagnosisSequence",
        "revenue",
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
    product = item.get("productOrService") or {}
    if any(c.get("system") == REVENUE for c in product.get("coding", [])):
        # A revenue-code-only line (room and board): the revenue code is in ``revenue``, and
        # CARIN's institutional value set spells "no procedure code" as not-applicable.
        item.setdefault("revenue", product)
        item["productOrService"] = _concept(DATA_ABSENT, "not-applicable", "Not Applicable")
    item["adjudication"] = _line_adjudications(line, in_network, True, line_status=professional)
    return item


def _supporting_info(kind: str, received: str, period: dict[str, Any]) -> list[dict[str, Any]]:
    info: list[dict[str, Any]] = [
        {
            "sequence": 1,
            "category": _concept(C4BB_SUPPORTING_INFO, "clmrecvddate", "Claim Received Date"),
            "timingDate": received,
        }
    ]
    if kind == "inpatient":
        # Required by the inpatient profile; the stay is the claim's billable period.
        info.append(
            {
                "sequence": 2,
                "category": _concept(C4BB_SUPPORTING_INFO, "admissionperiod", "Admission Period"),
                "timingPeriod": {k: v for k, v in period.items() if k in ("start", "end")},
            }
        )
    return info


def _diagnoses(diagnoses: list[dict[str, Any]], professional: bool) -> list[dict[str, Any]]:
    """EOB.diagnosis with exactly one ``type`` each, as every CARIN STU2 profile requires:
    the Claim's first diagnosis is the principal one (ICD-10-CM Guidelines IV.A for
    outpatient, II for inpatient), the others secondary (professional) or other
    (institutional)."""
    out = []
    for n, d in enumerate(diagnoses):
        entry = {k: v for k, v in d.items() if k in ("sequence", "diagnosisCodeableConcept")}
        if n == 0:
            kind = _concept(HL7_DIAGNOSIS_TYPE, "principal", "Principal Diagnosis")
        elif professional:
            kind = _concept(C4BB_DIAGNOSIS_TYPE, "secondary", "Secondary")
        else:
            kind = _concept(C4BB_DIAGNOSIS_TYPE, "other", "Other")
        entry["type"] = [kind]
        out.append(entry)
    return out


def _procedures(procedures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """EOB.procedure with its C4BBClaimProcedureType (the first is the principal one)."""
    out = []
    for n, p in enumerate(procedures):
        entry = {
            k: v for k, v in p.items() if k in ("sequence", "date", "procedureCodeableConcept")
        }
        code = "principal" if n == 0 else "other"
        entry["type"] = [_concept(C4BB_PROCEDURE_TYPE, code, code.capitalize())]
        out.append(entry)
    return out


def _period_of(claim: dict[str, Any]) -> dict[str, str]:
    days = sorted(
        str(item["servicedDate"]) for item in claim.get("item") or [] if item.get("servicedDate")
    )
    if not days:
        created = str(claim.get("created", ""))[:10]
        return {"start": created, "end": created}
    return {"start": days[0], "end": days[-1]}
