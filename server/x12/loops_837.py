"""The loops the 837P and the 837I share: header, submitter and receiver (1000A/B),
billing provider (2000A/2010AA), subscriber and payer (2000B/2010BA/2010BB), patient
(2000C/2010CA, when the patient is not the subscriber) and the diagnosis codes.

Element numbers follow the ASC X12 5010 implementation guides (005010X222A1 and
005010X223A2); where a required value is missing the ``Report`` records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from server.x12.elements import (
    NPI_SYSTEM,
    Address,
    Report,
    address,
    amount,
    code_in,
    d8,
    human_name,
    identifier,
    npi_is_valid,
    tax_id,
)
from server.x12.gather import ClaimParts
from server.x12.parties import Parties
from server.x12.segments import Segments, clean

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SOPT = "https://nahdo.org/sopt"
# Source of Payment Typology (first digit, or the whole code) -> SBR09 claim filing
# indicator (X12 1032). Professional Medicare is Part B (MB), institutional Part A (MA).
SOPT_FILING = {"2": "MC", "31": "CH", "32": "VA", "5": "CI", "6": "BL", "7": "HM", "8": "ZZ"}
# Coverage.relationship (HL7 subscriber-relationship) -> PAT01 (X12 1069).
RELATIONSHIP = {"spouse": "01", "child": "19", "common": "53", "other": "G8", "parent": "G8"}
RESPONSIBILITY = {1: "P", 2: "S", 3: "T"}


@dataclass(frozen=True, slots=True)
class Frequency:
    """CLM05-3 claim frequency: 1 original, 7 replacement, 8 void; with 7 and 8 the
    payer's claim control number of the claim being replaced (REF*F8)."""

    code: str = "1"
    original_reference: str | None = None


def header(body: Segments, reference: str, moment: datetime) -> None:
    """BHT: purpose 00 original, transaction type CH chargeable."""
    body.add(
        "BHT",
        "0019",
        "00",
        clean(reference, 30),
        moment.strftime("%Y%m%d"),
        moment.strftime("%H%M"),
        "CH",
    )


def submitter_receiver(body: Segments, parties: Parties) -> None:
    """1000A submitter (with its EDI contact) and 1000B receiver."""
    body.add(
        "NM1",
        "41",
        "2",
        clean(parties.submitter_name, 60),
        "",
        "",
        "",
        "",
        "46",
        clean(parties.submitter_id, 80),
    )
    body.add(
        "PER", "IC", clean(parties.submitter_contact, 60), "TE", clean(parties.submitter_phone, 256)
    )
    body.add(
        "NM1",
        "40",
        "2",
        clean(parties.receiver_name, 60),
        "",
        "",
        "",
        "",
        "46",
        clean(parties.receiver_id, 80),
    )


def _address_segments(body: Segments, addr: Address) -> None:
    body.add("N3", clean(addr.line1 or "", 55), clean(addr.line2 or "", 55) or None)
    body.add("N4", clean(addr.city or "", 30), clean(addr.state or "", 2), addr.zip or "")


def _need_address(
    report: Report, addr: Address, loop: str, who: str, where: str, nine_digit_zip: bool = False
) -> None:
    report.need(addr.line1, loop, "N3", "01", f"{who} address line", f"{where}.address.line")
    report.need(addr.city, loop, "N4", "01", f"{who} city", f"{where}.address.city")
    report.need(addr.state, loop, "N4", "02", f"{who} state", f"{where}.address.state")
    lengths = (9,) if nine_digit_zip else (5, 9)
    zip_ok = addr.zip if addr.zip and len(addr.zip) in lengths else None
    what = f"{who} ZIP code" + (" of nine digits (ZIP+4)" if nine_digit_zip else "")
    report.need(zip_ok, loop, "N4", "03", what, f"{where}.address.postalCode")


def person_name(
    body: Segments,
    entity: str,
    who: dict[str, Any] | None,
    npi: str | None,
    loop: str,
    role: str,
    where: str,
    report: Report,
) -> None:
    """NM1 for a person (entity ``85`` billing, ``71`` attending, ``82`` rendering, ``DN``
    referring): name from the Practitioner, NPI as ``XX``; a missing last name is reported."""
    last, first, middle = human_name(who)
    report.need(last, loop, "NM1", "03", f"{role} last name", f"{where}.name")
    body.add(
        "NM1",
        entity,
        "1",
        clean(last or "", 60),
        clean(first or "", 35),
        clean(middle or "", 25),
        "",
        "",
        "XX",
        npi or "",
    )


def billing_provider(body: Segments, parts: ClaimParts, parties: Parties, report: Report) -> None:
    """2000A/2010AA: the provider's NPI, address and EIN; the configured billing provider
    supplies what the Claim's provider lacks."""
    provider = parts.provider
    where = (parts.claim.get("provider") or {}).get("reference") or "Claim.provider"
    body.add("HL", "1", "", "20", "1")
    if parties.billing_taxonomy:
        body.add("PRV", "BI", "PXC", clean(parties.billing_taxonomy, 50))
    person = (provider or {}).get("resourceType") == "Practitioner"
    npi = identifier(provider, NPI_SYSTEM) or parties.billing_npi
    report.need(
        npi,
        "2010AA",
        "NM1",
        "09",
        "billing provider NPI",
        f"{where}.identifier.where(system='{NPI_SYSTEM}') or x12_billing_npi",
    )
    if npi and not npi_is_valid(npi):
        report.need(
            None,
            "2010AA",
            "NM1",
            "09",
            f"a valid billing provider NPI ({npi!r} fails the NPI check digit)",
            f"{where}.identifier",
        )
    if person:
        person_name(body, "85", provider, npi, "2010AA", "billing provider", where, report)
    else:
        name = (provider or {}).get("name") or parties.billing_name
        report.need(
            name,
            "2010AA",
            "NM1",
            "03",
            "billing provider name",
            f"{where}.name or x12_billing_name",
        )
        body.add("NM1", "85", "2", clean(name or "", 60), "", "", "", "", "XX", npi or "")
    addr = address(provider)
    configured = Address(
        parties.billing_address,
        None,
        parties.billing_city,
        parties.billing_state,
        parties.billing_zip,
    )
    if parties.billing_address and not (addr.line1 and addr.zip and len(addr.zip) == 9):
        addr = configured
    _need_address(
        report, addr, "2010AA", "billing provider", f"{where} or x12_billing_*", nine_digit_zip=True
    )
    _address_segments(body, addr)
    ein = tax_id(provider) or parties.billing_tax_id
    report.need(
        ein,
        "2010AA",
        "REF",
        "02",
        "billing provider tax id (EIN)",
        f"{where}.identifier.where(system='urn:oid:2.16.840.1.113883.4.4') or x12_billing_tax_id",
    )
    body.add("REF", "EI", clean(ein or "", 50))


def filing_indicator(parts: ClaimParts, institutional: bool, report: Report) -> str:
    """SBR09 from the Coverage's Source of Payment Typology; commercial (CI) when the
    Coverage has no type, said in the report's notes."""
    code = code_in((parts.coverage or {}).get("type"), SOPT)
    if code is None:
        report_note(
            report,
            "SBR09 claim filing indicator: the Coverage has no Source of"
            " Payment Typology type; sent as CI (commercial insurance)",
        )
        return "CI"
    if code.startswith("1"):
        return "MA" if institutional else "MB"
    for prefix in (code[:2], code[:1]):
        if prefix in SOPT_FILING:
            return SOPT_FILING[prefix]
    report_note(
        report,
        f"SBR09: Source of Payment Typology {code} has no filing indicator;"
        " sent as ZZ (mutually defined)",
    )
    return "ZZ"


def report_note(report: Report, note: str) -> None:
    report.notes.append(note)


def _demographics(
    body: Segments, person: dict[str, Any] | None, loop: str, where: str, report: Report
) -> None:
    birth = d8((person or {}).get("birthDate"))
    report.need(birth, loop, "DMG", "02", "birth date", f"{where}.birthDate")
    gender = {"male": "M", "female": "F"}.get(str((person or {}).get("gender")), "U")
    body.add("DMG", "D8", birth or "", gender)


def subscriber_and_payer(
    body: Segments, parts: ClaimParts, report: Report, institutional: bool
) -> None:
    """2000B/2010BA/2010BB, then 2000C/2010CA when the patient is not the subscriber."""
    coverage = parts.coverage  # present: ``outbound`` refuses a claim without one
    self_ = parts.subscriber_is_patient
    body.add("HL", "2", "1", "22", "0" if self_ else "1")
    insurance = parts.claim.get("insurance") or [{}]
    focal = next((i for i in insurance if i.get("focal")), insurance[0])
    group = None
    for cls in (coverage or {}).get("class") or []:
        if code_in(cls.get("type")) == "group":
            group = cls.get("value")
    body.add(
        "SBR",
        RESPONSIBILITY.get(int(focal.get("sequence") or 1), "T"),
        "18" if self_ else "",
        clean(group or "", 50),
        "",
        "",
        "",
        "",
        "",
        filing_indicator(parts, institutional, report),
    )
    sub = parts.subscriber
    sub_where = "Coverage.subscriber" if not self_ else "Claim.patient"
    last, first, middle = human_name(sub)
    report.need(last, "2010BA", "NM1", "03", "subscriber last name", f"{sub_where}.name.family")
    member = (coverage or {}).get("subscriberId") or next(
        (i.get("value") for i in (coverage or {}).get("identifier") or [] if i.get("value")), None
    )
    report.need(member, "2010BA", "NM1", "09", "subscriber member id", "Coverage.subscriberId")
    body.add(
        "NM1",
        "IL",
        "1",
        clean(last or "", 60),
        clean(first or "", 35),
        clean(middle or "", 25),
        "",
        "",
        "MI",
        clean(member or "", 80),
    )
    if self_:
        addr = address(sub)
        _need_address(report, addr, "2010BA", "subscriber", sub_where)
        _address_segments(body, addr)
        _demographics(body, sub, "2010BA", sub_where, report)
    payer_ref = parts.payor_reference
    payer_name = (parts.payer or {}).get("name") or payer_ref.get("display")
    payer_id = next(
        (str(i["value"]) for i in (parts.payer or {}).get("identifier") or [] if i.get("value")),
        None,
    ) or (payer_ref.get("identifier") or {}).get("value")
    report.need(payer_name, "2010BB", "NM1", "03", "payer name", "Coverage.payor.display")
    report.need(
        payer_id,
        "2010BB",
        "NM1",
        "09",
        "payer id",
        "Coverage.payor (Organization.identifier or Reference.identifier)",
    )
    body.add(
        "NM1",
        "PR",
        "2",
        clean(payer_name or "", 60),
        "",
        "",
        "",
        "",
        "PI",
        clean(payer_id or "", 80),
    )
    if not self_:
        rel = code_in((coverage or {}).get("relationship")) or "other"
        body.add("HL", "3", "2", "23", "0")
        body.add("PAT", RELATIONSHIP.get(rel, "G8"))
        plast, pfirst, pmiddle = human_name(parts.patient)
        report.need(plast, "2010CA", "NM1", "03", "patient last name", "Patient.name.family")
        body.add(
            "NM1",
            "QC",
            "1",
            clean(plast or "", 60),
            clean(pfirst or "", 35),
            clean(pmiddle or "", 25),
        )
        addr = address(parts.patient)
        _need_address(report, addr, "2010CA", "patient", "Patient")
        _address_segments(body, addr)
        _demographics(body, parts.patient, "2010CA", "Patient", report)


@dataclass
class ClaimOpening:
    """The loops every 837 claim starts with, and what its CLM segment needs."""

    body: Segments
    items: list[dict[str, Any]]
    charge: float  # CLM02: the sum of the lines' net amounts


def open_claim(
    parts: ClaimParts,
    parties: Parties,
    reference: str,
    moment: datetime,
    report: Report,
    *,
    institutional: bool,
) -> ClaimOpening:
    """BHT, 1000A/B, 2000A/2010AA (billing provider), 2000B/2010BA/BB (subscriber, payer),
    and the service lines' presence checked (SV1 professional, SV2 institutional)."""
    body = Segments()
    header(body, reference, moment)
    submitter_receiver(body, parties)
    billing_provider(body, parts, parties, report)
    subscriber_and_payer(body, parts, report, institutional=institutional)
    items = parts.claim.get("item") or []
    line = "SV2" if institutional else "SV1"
    report.need(items or None, "2400", line, "", "at least one service line", "Claim.item")
    charge = sum(float((i.get("net") or {}).get("value") or 0) for i in items)
    return ClaimOpening(body, items, charge)


def claim_segment(
    opening: ClaimOpening, pcn: str, facility: list[str], provider_signature: str
) -> None:
    """CLM: patient control number, total charge, CLM05 (facility code, its qualifier,
    frequency), provider signature on file, assignment, benefits assigned, release."""
    opening.body.add(
        "CLM",
        clean(pcn, 20),
        amount(opening.charge),
        "",
        "",
        facility,
        provider_signature,
        "A",
        "Y",
        "Y",
    )


def diagnosis_codes(claim: dict[str, Any]) -> list[str]:
    """ICD-10-CM codes in ``Claim.diagnosis`` order, without the dot."""
    out = []
    for d in sorted(claim.get("diagnosis") or [], key=lambda d: int(d.get("sequence") or 0)):
        code = code_in(d.get("diagnosisCodeableConcept"), ICD10CM)
        if code:
            out.append(code.replace(".", ""))
    return out


def frequency_reference(body: Segments, frequency: Frequency, report: Report) -> None:
    """REF*F8 payer claim control number, required with frequency 7 and 8."""
    if frequency.code in ("7", "8"):
        report.need(
            frequency.original_reference,
            "2300",
            "REF",
            "02",
            "payer claim control number of the claim replaced or voided",
            "ClaimResponse.identifier (from the 835 of the original claim)",
        )
        body.add("REF", "F8", clean(frequency.original_reference or "", 50))


def practitioner_npi(
    who: dict[str, Any] | None, loop: str, role: str, report: Report, where: str
) -> str | None:
    npi = identifier(who, NPI_SYSTEM)
    report.need(
        npi, loop, "NM1", "09", f"{role} NPI", f"{where}.identifier.where(system='{NPI_SYSTEM}')"
    )
    if npi and not npi_is_valid(npi):
        report.need(
            None,
            loop,
            "NM1",
            "09",
            f"a valid {role} NPI ({npi!r} fails the check digit)",
            f"{where}.identifier",
        )
    return npi


def _role(member: dict[str, Any]) -> str | None:
    return code_in(member.get("role"))


def responsible_practitioner(parts: ClaimParts) -> tuple[dict[str, Any] | None, str]:
    """The care team's responsible (or first) member who did the work (not the
    referring provider), and its reference."""
    team = [m for m in parts.claim.get("careTeam") or [] if _role(m) != "referring"]
    member = next((m for m in team if m.get("responsible")), team[0] if team else None)
    if member is None:
        return None, "Claim.careTeam"
    ref = (member.get("provider") or {}).get("reference") or "Claim.careTeam.provider"
    return parts.care_team.get(int(member.get("sequence") or 0)), ref


def referring_provider(body: Segments, parts: ClaimParts, loop: str, report: Report) -> None:
    """NM1*DN: the care team member whose role is ``referring`` (CARIN's
    C4BBClaimCareTeamRole), when the Claim has one; its NPI is then required."""
    member = next((m for m in parts.claim.get("careTeam") or [] if _role(m) == "referring"), None)
    if member is None:
        return
    where = (member.get("provider") or {}).get("reference") or "Claim.careTeam.provider"
    who = parts.care_team.get(int(member.get("sequence") or 0))
    npi = practitioner_npi(who, loop, "referring provider", report, where)
    person_name(body, "DN", who, npi, loop, "referring provider", where, report)


def line_date(item: dict[str, Any], claim: dict[str, Any]) -> str | None:
    return d8(
        item.get("servicedDate")
        or (item.get("servicedPeriod") or {}).get("start")
        or (claim.get("billablePeriod") or {}).get("start")
    )


def patient_control_number_of(claim_id: str) -> str:
    """CLM01 (at most 20 characters): the Claim id when it fits, else the first 20
    characters of the id without its hyphens (a UUID's first 80 bits); the ledger
    records the mapping so an 835's CLP01 finds the Claim again."""
    if len(claim_id) <= 20:
        return claim_id
    return claim_id.replace("-", "")[:20]
