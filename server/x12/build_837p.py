"""837P (005010X222A1) from a professional Claim: 2300 claim, 2310B rendering provider,
2400 service lines (SV1 with HC:code:modifiers, charge, units, diagnosis pointers; DTP*472
date of service; REF*6R the line's sequence, which the 835's SVC loop echoes back)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from server.x12.elements import Report, amount, code_in, quantity
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
from server.x12.segments import Segments, clean

VERSION = "005010X222A1"
POS = "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"
MAX_DIAGNOSES = 12


def procedure_composite(item: dict[str, Any]) -> tuple[str | None, list[str]]:
    """HC:code:modifier... of a line (CPT or HCPCS), modifiers at most four."""
    code = code_in(item.get("productOrService"))
    modifiers = [m for m in (code_in(x) for x in item.get("modifier") or []) if m][:4]
    return code, ["HC", clean(code or "", 48), *modifiers]


def hi_index(claim: dict[str, Any]) -> dict[int, int]:
    """``Claim.diagnosis.sequence`` -> position (1-based) in the HI segment."""
    positions: dict[int, int] = {}
    ordered = sorted(claim.get("diagnosis") or [], key=lambda d: int(d.get("sequence") or 0))
    n = 0
    for d in ordered:
        if code_in(d.get("diagnosisCodeableConcept"), "http://hl7.org/fhir/sid/icd-10-cm"):
            n += 1
            positions[int(d.get("sequence") or 0)] = n
    return positions


def build_837p(
    parts: ClaimParts,
    parties: Parties,
    pcn: str,
    frequency: Frequency,
    reference: str,
    moment: datetime,
    report: Report,
) -> Segments:
    """The transaction set body (BHT to the last service line) of one claim."""
    claim = parts.claim
    opening = open_claim(parts, parties, reference, moment, report, institutional=False)
    body, items = opening.body, opening.items
    pos = next((code_in(i.get("locationCodeableConcept")) for i in items), None)
    report.need(
        pos, "2300", "CLM", "05-1", "place of service", "Claim.item.locationCodeableConcept"
    )
    claim_segment(opening, pcn, [pos or "", "B", frequency.code], "Y")
    frequency_reference(body, frequency, report)
    codes = diagnosis_codes(claim)
    report.need(
        codes or None, "2300", "HI", "01-2", "principal diagnosis (ICD-10-CM)", "Claim.diagnosis"
    )
    if len(codes) > MAX_DIAGNOSES:
        report.notes.append(
            f"HI: {len(codes)} diagnoses, the 837P carries the first {MAX_DIAGNOSES}"
        )
    if codes:
        body.add("HI", *[["ABK" if n == 0 else "ABF", c] for n, c in enumerate(codes[:12])])
    referring_provider(body, parts, "2310A", report)
    who, where = responsible_practitioner(parts)
    if who is not None and (parts.provider or {}).get("resourceType") != "Practitioner":
        npi = practitioner_npi(who, "2310B", "rendering provider", report, where)
        person_name(body, "82", who, npi, "2310B", "rendering provider", where, report)
    positions = hi_index(claim)
    for n, item in enumerate(items, start=1):
        where_item = f"Claim.item[{n - 1}]"
        code, composite = procedure_composite(item)
        report.need(code, "2400", "SV1", "01-2", "procedure code", f"{where_item}.productOrService")
        pointers = [
            str(positions[s])
            for s in item.get("diagnosisSequence") or []
            if s in positions and positions[s] <= MAX_DIAGNOSES
        ][:4]
        report.need(
            pointers or None,
            "2400",
            "SV1",
            "07-1",
            "diagnosis pointer",
            f"{where_item}.diagnosisSequence",
        )
        line_pos = code_in(item.get("locationCodeableConcept"))
        body.add("LX", str(n))
        body.add(
            "SV1",
            composite,
            amount((item.get("net") or {}).get("value")),
            "UN",
            quantity((item.get("quantity") or {}).get("value") or 1),
            line_pos if line_pos and line_pos != pos else "",
            "",
            pointers,
        )
        day = line_date(item, claim)
        report.need(day, "2400", "DTP", "03", "date of service", f"{where_item}.servicedDate")
        body.add("DTP", "472", "D8", day or "")
        body.add("REF", "6R", str(item.get("sequence") or n))
    return body
