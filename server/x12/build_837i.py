"""837I (005010X223A2) from an institutional Claim: type of bill, statement dates,
admission and discharge data (CL1), principal, admitting and other diagnoses, principal
and other ICD-10-PCS procedures, the attending provider (2310A) and revenue-coded
service lines (2400 SV2).

Codes the Claim does not carry are taken from the Encounter where FHIR has them
(``hospitalization.admitSource``, ``dischargeDisposition``, ``priority``); otherwise the
NUBC "information not available" code (9) is sent and the report says so.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from server.x12.build_837p import procedure_composite
from server.x12.elements import Report, amount, code_in, d8, quantity
from server.x12.gather import ClaimParts
from server.x12.loops_837 import (
    Frequency,
    claim_segment,
    diagnosis_codes,
    frequency_reference,
    line_date,
    open_claim,
    person_name,
    practitioner_npi,
    referring_provider,
    responsible_practitioner,
)
from server.x12.parties import Parties
from server.x12.segments import Segments

VERSION = "005010X223A2"
REVENUE = "https://www.nubc.org/CodeSystem/RevenueCodes"
ICD10PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
# HL7 discharge-disposition -> NUBC patient discharge status (CL103).
DISCHARGE_STATUS = {
    "home": "01",
    "alt-home": "01",
    "other-hcf": "05",
    "hosp": "02",
    "long": "63",
    "aadvice": "07",
    "exp": "20",
    "psy": "65",
    "rehab": "62",
    "snf": "03",
    "oth": "70",
}
# HL7 admit-source -> NUBC point of origin for admission (CL102).
POINT_OF_ORIGIN = {
    "hosp-trans": "4",
    "emd": "7",
    "outp": "2",
    "gp": "1",
    "mp": "1",
    "nursing": "5",
    "psych": "4",
    "rehab": "4",
    "born": "5",
}
# v3 ActPriority -> NUBC priority (type) of admission (CL101).
ADMISSION_TYPE = {"EM": "1", "UR": "2", "EL": "3", "R": "3"}


def inpatient(claim: dict[str, Any]) -> bool:
    return code_in(claim.get("subType")) == "inpatient"


def _dt(text: Any) -> str | None:
    """CCYYMMDDHHMM of a dateTime with a time."""
    s = str(text or "")
    if len(s) < 16 or "T" not in s:
        return None
    return s[:10].replace("-", "") + s[11:16].replace(":", "")


def _institutional_codes(
    body: Segments, parts: ClaimParts, report: Report, is_inpatient: bool
) -> None:
    """CL1: admission type, point of origin and discharge status."""
    enc = parts.encounter or {}
    hosp = enc.get("hospitalization") or {}
    status = DISCHARGE_STATUS.get(code_in(hosp.get("dischargeDisposition")) or "")
    if status is None:
        status = "01"
        report.notes.append(
            "CL103 patient status: the Encounter has no discharge disposition"
            " Billable maps; sent as 01 (discharged to home or self care)"
        )
    if not is_inpatient:
        body.add("CL1", "", "", status)
        return
    admit_type = ADMISSION_TYPE.get(code_in(enc.get("priority")) or "")
    if admit_type is None and code_in({"coding": [enc.get("class") or {}]}) == "EMER":
        admit_type = "1"
    if admit_type is None:
        admit_type = "9"
        report.notes.append(
            "CL101 admission type: the Encounter has no priority; sent as 9"
            " (information not available)"
        )
    origin = POINT_OF_ORIGIN.get(code_in(hosp.get("admitSource")) or "")
    if origin is None:
        origin = "9"
        report.notes.append(
            "CL102 point of origin: the Encounter has no admit source; sent as"
            " 9 (information not available)"
        )
    body.add("CL1", admit_type, origin, status)


def _procedures(body: Segments, claim: dict[str, Any]) -> None:
    """HI*BBR principal and HI*BBQ other ICD-10-PCS procedures, with their dates."""
    found = []
    for p in sorted(claim.get("procedure") or [], key=lambda p: int(p.get("sequence") or 0)):
        code = code_in(p.get("procedureCodeableConcept"), ICD10PCS) or code_in(
            p.get("procedureCodeableConcept")
        )
        day = d8(p.get("date")) or d8((claim.get("billablePeriod") or {}).get("start"))
        if code and day:
            found.append((code.replace(".", ""), day))
    if not found:
        return
    body.add("HI", ["BBR", found[0][0], "D8", found[0][1]])
    others = found[1:25]
    for start in range(0, len(others), 12):
        body.add("HI", *[["BBQ", c, "D8", d] for c, d in others[start : start + 12]])


def build_837i(
    parts: ClaimParts,
    parties: Parties,
    pcn: str,
    frequency: Frequency,
    reference: str,
    moment: datetime,
    report: Report,
) -> Segments:
    claim = parts.claim
    is_inpatient = inpatient(claim)
    opening = open_claim(parts, parties, reference, moment, report, institutional=True)
    body, items = opening.body, opening.items
    facility = "11" if is_inpatient else "13"  # type of bill 011x hospital inpatient, 013x out
    claim_segment(opening, pcn, [facility, "A", frequency.code], "")
    period = claim.get("billablePeriod") or {}
    start, end = d8(period.get("start")), d8(period.get("end") or period.get("start"))
    report.need(start, "2300", "DTP", "03", "statement from date", "Claim.billablePeriod.start")
    if is_inpatient:
        discharge = _dt(period.get("end"))
        if discharge:
            body.add("DTP", "096", "TM", discharge[8:])
    body.add("DTP", "434", "RD8", f"{start or ''}-{end or start or ''}")
    if is_inpatient:
        admission = _dt(period.get("start"))
        report.need(
            admission,
            "2300",
            "DTP",
            "03",
            "admission date and hour",
            "Claim.billablePeriod.start (a dateTime)",
        )
        body.add("DTP", "435", "DT", admission or "")
    _institutional_codes(body, parts, report, is_inpatient)
    frequency_reference(body, frequency, report)
    codes = diagnosis_codes(claim)
    report.need(
        codes or None, "2300", "HI", "01-2", "principal diagnosis (ICD-10-CM)", "Claim.diagnosis"
    )
    if codes:
        body.add("HI", ["ABK", codes[0]])
        if is_inpatient:
            admitting = _admitting(claim) or codes[0]
            if _admitting(claim) is None:
                report.notes.append(
                    "HI*ABJ admitting diagnosis: the Claim has no diagnosis"
                    " typed admitting; the principal diagnosis is sent"
                )
            body.add("HI", ["ABJ", admitting])
        else:
            body.add("HI", ["APR", codes[0]])  # patient's reason for visit (outpatient)
        others = codes[1:25]
        for at in range(0, len(others), 12):
            body.add("HI", *[["ABF", c] for c in others[at : at + 12]])
    _procedures(body, claim)
    who, where = responsible_practitioner(parts)
    report.need(
        who,
        "2310A",
        "NM1",
        "",
        "attending provider (a Practitioner on the care team)",
        "Claim.careTeam.provider",
    )
    if who is not None:
        npi = practitioner_npi(who, "2310A", "attending provider", report, where)
        person_name(body, "71", who, npi, "2310A", "attending provider", where, report)
    referring_provider(body, parts, "2310F", report)
    for n, item in enumerate(items, start=1):
        where_item = f"Claim.item[{n - 1}]"
        revenue = code_in(item.get("revenue"), REVENUE) or code_in(item.get("revenue"))
        report.need(revenue, "2400", "SV2", "01", "revenue code", f"{where_item}.revenue")
        code, composite = procedure_composite(item)
        coding = ((item.get("productOrService") or {}).get("coding") or [{}])[0]
        hcpcs = composite if code and coding.get("system") != REVENUE else None
        room = revenue is not None and revenue.startswith(("01", "02"))  # accommodation
        body.add("LX", str(n))
        body.add(
            "SV2",
            revenue or "",
            hcpcs,
            amount((item.get("net") or {}).get("value")),
            "DA" if room else "UN",
            quantity((item.get("quantity") or {}).get("value") or 1),
        )
        day = line_date(item, claim)
        if day:
            body.add("DTP", "472", "D8", day)
        body.add("REF", "6R", str(item.get("sequence") or n))
    return body


def _admitting(claim: dict[str, Any]) -> str | None:
    for d in claim.get("diagnosis") or []:
        if any(code_in(t) == "admitting" for t in d.get("type") or []):
            code = code_in(d.get("diagnosisCodeableConcept"))
            return code.replace(".", "") if code else None
    return None
