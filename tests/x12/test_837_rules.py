"""837 builder rules on hand-made claims (no store): who is the subscriber, frequency
codes, what a missing or invalid value is reported as, the outpatient 837I, cleaning."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from server.config import Settings
from server.x12 import build_837i, build_837p, reader
from server.x12.elements import NPI_SYSTEM, amount, npi_is_valid
from server.x12.envelope import Envelope
from server.x12.gather import ClaimParts
from server.x12.loops_837 import Frequency
from server.x12.outbound import X12Out
from server.x12.parties import Parties
from tests.x12.conftest import X12_SETTINGS

ICD = "http://hl7.org/fhir/sid/icd-10-cm"
MOMENT = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "name": [{"family": "Child", "given": ["Casey"]}],
    "birthDate": "2015-04-01",
    "gender": "female",
    "address": [{"line": ["5 Elm St"], "city": "Boston", "state": "MA", "postalCode": "02111"}],
}
PARENT: dict[str, Any] = {
    "resourceType": "RelatedPerson",
    "id": "rp1",
    "patient": {"reference": "Patient/p1"},
    "name": [{"family": "Parent", "given": ["Pat"]}],
}
DOCTOR: dict[str, Any] = {
    "resourceType": "Practitioner",
    "identifier": [{"system": NPI_SYSTEM, "value": "1245319599"}],
    "name": [{"family": "Smith", "given": ["Ann"]}],
}


def professional_claim() -> dict[str, Any]:
    return {
        "resourceType": "Claim",
        "id": "claim-1",
        "status": "active",
        "type": {"coding": [{"code": "professional"}]},
        "patient": {"reference": "Patient/p1"},
        "provider": {"reference": "Organization/o1"},
        "careTeam": [{"sequence": 1, "provider": {"reference": "Practitioner/d1"}}],
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/c1"}}],
        "diagnosis": [
            {
                "sequence": 1,
                "diagnosisCodeableConcept": {"coding": [{"system": ICD, "code": "J06.9"}]},
            }
        ],
        "item": [
            {
                "sequence": 1,
                "diagnosisSequence": [1],
                "productOrService": {"coding": [{"code": "99213"}]},
                "servicedDate": "2026-03-02",
                "locationCodeableConcept": {"coding": [{"code": "11"}]},
                "quantity": {"value": 1},
                "net": {"value": 110},
            }
        ],
    }


def parts(claim: dict[str, Any] | None = None, **overrides: Any) -> ClaimParts:
    p = ClaimParts(
        "claim-1",
        1,
        claim or professional_claim(),
        patient=copy.deepcopy(PATIENT),
        coverage={
            "resourceType": "Coverage",
            "subscriberId": "MEM42",
            "subscriber": {"reference": "RelatedPerson/rp1"},
            "relationship": {"coding": [{"code": "child"}]},
            "type": {"coding": [{"system": "https://nahdo.org/sopt", "code": "2"}]},
            "payor": [{"display": "State Medicaid", "identifier": {"value": "SMCD1"}}],
        },
        subscriber=copy.deepcopy(PARENT),
        provider={"resourceType": "Organization", "name": "Kids Clinic"},
        care_team={1: copy.deepcopy(DOCTOR)},
    )
    for key, value in overrides.items():
        setattr(p, key, value)
    return p


def out() -> X12Out:
    o = X12Out.__new__(X12Out)
    o.parties = Parties.from_settings(Settings(**X12_SETTINGS))
    return o


def document(built_bodies: list, version: str = build_837p.VERSION) -> str:
    return Envelope("BILLABLETEST", "CLEARINGHOUSE", "T", 5, MOMENT, "HC", version).wrap(
        built_bodies
    )


def lines(body) -> list[str]:
    return list(body.items)


def test_a_child_on_a_parents_coverage_gets_a_patient_loop_2000c_and_validates():
    built = out().build_parts(parts(), Frequency())
    assert built.report.missing == []
    segs = lines(built.body)
    assert "HL*2*1*22*1" in segs and "HL*3*2*23*0" in segs and "PAT*19" in segs
    assert "SBR*P********MC" in segs  # not self (no 18), Medicaid filing indicator
    assert any(s.startswith("NM1*IL*1*Parent*Pat") for s in segs)
    assert any(s.startswith("NM1*QC*1*Child*Casey") for s in segs)
    assert reader.validate(document([built.body])) == []


def test_the_configured_billing_provider_supplies_what_the_organization_lacks():
    built = out().build_parts(parts(), Frequency())
    segs = lines(built.body)
    assert "NM1*85*2*Kids Clinic*****XX*1234567893" in segs
    assert "REF*EI*041234567" in segs and "N4*Boston*MA*021101234" in segs


def test_a_missing_billing_npi_and_tax_id_are_named_by_loop_segment_and_element():
    o = X12Out.__new__(X12Out)
    o.parties = Parties.from_settings(Settings())  # nothing configured
    built = o.build_parts(parts(), Frequency())
    found = {(m.loop, m.segment + m.element) for m in built.report.missing}
    assert ("2010AA", "NM109") in found  # billing provider NPI
    assert ("2010AA", "REF02") in found  # tax id
    assert ("2010AA", "N301") in found  # address
    assert all(m.expression for m in built.report.missing)


def test_an_npi_that_fails_the_check_digit_is_reported():
    assert npi_is_valid("1234567893") and not npi_is_valid("1234567890")
    doctor = copy.deepcopy(DOCTOR)
    doctor["identifier"][0]["value"] = "1234567890"
    built = out().build_parts(parts(care_team={1: doctor}), Frequency())
    assert [m.loop + " " + m.segment + m.element for m in built.report.missing] == ["2310B NM109"]
    assert "check digit" in built.report.missing[0].what


def test_replacement_and_void_carry_frequency_7_and_8_with_the_payer_claim_number():
    for code in ("7", "8"):
        built = out().build_parts(parts(), Frequency(code, "PAYER-ICN-1"))
        segs = lines(built.body)
        assert any(s.startswith("CLM*claim-1*110***11:B:" + code) for s in segs)
        assert "REF*F8*PAYER-ICN-1" in segs
        assert reader.validate(document([built.body])) == []
    refused = out().build_parts(parts(), Frequency("7", None))
    assert [(m.loop, m.segment + m.element) for m in refused.report.missing] == [("2300", "REF02")]


def test_an_outpatient_institutional_claim_makes_a_valid_837i():
    claim = professional_claim()
    claim["type"] = {"coding": [{"code": "institutional"}]}
    claim["subType"] = {"coding": [{"code": "outpatient"}]}
    claim["billablePeriod"] = {"start": "2026-03-02T08:00:00Z", "end": "2026-03-02T12:00:00Z"}
    claim["item"][0]["revenue"] = {
        "coding": [{"system": "https://www.nubc.org/CodeSystem/RevenueCodes", "code": "0450"}]
    }
    claim["item"][0]["productOrService"] = {"coding": [{"code": "99284"}]}
    built = out().build_parts(parts(claim), Frequency())
    assert built.kind == "837I" and built.report.missing == []
    segs = lines(built.body)
    assert any(s.startswith("CLM*claim-1*110***13:A:1") for s in segs)
    assert "CL1***01" in segs and "HI*APR:J069" in segs
    assert "SV2*0450*HC:99284*110*UN*1" in segs
    assert reader.validate(document([built.body], build_837i.VERSION)) == []
    assert any("CL103" in n for n in built.report.notes)  # the fallback is said


def test_values_with_delimiters_are_cleaned_and_amounts_are_x12_decimals():
    patient = copy.deepcopy(PATIENT)
    patient["name"][0]["family"] = "O'Brien*Smith~Jr:"
    built = out().build_parts(parts(patient=patient), Frequency())
    assert any(
        s.startswith("NM1*QC*1*O'Brien Smith Jr *") or "O'Brien Smith Jr" in s
        for s in lines(built.body)
    )
    assert reader.validate(document([built.body])) == []
    assert (amount(110), amount(12.5), amount("0.005")) == ("110", "12.5", "0.01")


def test_a_referring_provider_on_the_care_team_is_loop_2310a_before_the_rendering_one():
    claim = professional_claim()
    claim["careTeam"].append(
        {
            "sequence": 2,
            "provider": {"reference": "Practitioner/d2"},
            "role": {"coding": [{"code": "referring"}]},
        }
    )
    referrer = {
        "resourceType": "Practitioner",
        "identifier": [{"system": NPI_SYSTEM, "value": "1234567893"}],
        "name": [{"family": "Referrer", "given": ["Rae"]}],
    }
    built = out().build_parts(parts(claim, care_team={1: DOCTOR, 2: referrer}), Frequency())
    segs = lines(built.body)
    dn = segs.index("NM1*DN*1*Referrer*Rae****XX*1234567893")
    assert dn < segs.index("NM1*82*1*Smith*Ann****XX*1245319599")
    assert reader.validate(document([built.body])) == []
    claim["type"] = {"coding": [{"code": "institutional"}]}
    claim["subType"] = {"coding": [{"code": "outpatient"}]}
    claim["billablePeriod"] = {"start": "2026-03-02", "end": "2026-03-02"}
    claim["item"][0]["revenue"] = {"coding": [{"code": "0510"}]}
    built = out().build_parts(parts(claim, care_team={1: DOCTOR, 2: referrer}), Frequency())
    segs = lines(built.body)
    assert segs.index("NM1*71*1*Smith*Ann****XX*1245319599") < segs.index(
        "NM1*DN*1*Referrer*Rae****XX*1234567893"
    )
    assert reader.validate(document([built.body], build_837i.VERSION)) == []
