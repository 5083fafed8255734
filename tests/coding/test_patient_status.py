"""New vs established (CPT) from earlier encounters, roles and practitioners."""

from __future__ import annotations

from datetime import date

from mappings.coding.patient_status import patient_status
from tests.coding.cases_coder import FAMILY, NUCC, role, visit

DOS = date(2026, 3, 2)
NPI = "http://hl7.org/fhir/sid/us-npi"


def encounter(dr: str = "dr1", org: str = "org1") -> dict:
    e = visit("now", "2026-03-02", dr, org)
    e["participant"][0]["type"] = [{"coding": [{"code": "PPRF"}]}]
    return e


def practitioner(pid: str, npi: str) -> dict:
    return {
        "resourceType": "Practitioner",
        "id": pid,
        "identifier": [{"system": NPI, "value": npi}],
    }


def role_by_npi(rid: str, npi: str, specialty: str, org: str = "org1") -> dict:
    r = role(rid, "unused", specialty, org)
    r["practitioner"] = {"identifier": {"system": NPI, "value": npi}}
    return r


def test_roles_that_name_the_practitioner_by_npi_decide_by_specialty_and_group():
    prior = [visit("v1", "2025-05-01", "dr2", "org1")]
    roles = [role_by_npi("r1", "111", FAMILY), role_by_npi("r2", "222", FAMILY)]
    people = [practitioner("dr1", "111"), practitioner("dr2", "222")]
    found = patient_status(encounter(), prior, roles, DOS, people)
    assert found.established and not found.fallback


def test_without_the_practitioners_the_npi_roles_cannot_be_matched_and_the_org_decides():
    prior = [visit("v1", "2025-05-01", "dr2", "org2")]
    roles = [role_by_npi("r1", "111", FAMILY), role_by_npi("r2", "222", FAMILY)]
    found = patient_status(encounter(), prior, roles, DOS, [])
    assert not found.established and found.fallback


def test_an_inactive_role_does_not_count():
    prior = [visit("v1", "2025-05-01", "dr2", "org1")]
    inactive = {**role("r2", "dr2", FAMILY), "active": False}
    found = patient_status(encounter(), prior, [role("r1", "dr1", FAMILY), inactive], DOS)
    assert not found.established


def test_a_later_encounter_the_same_day_does_not_make_the_patient_established():
    later = visit("v1", "2026-03-02", "dr1", "org1")
    later["period"] = {"start": "2026-03-02T15:00:00Z", "end": "2026-03-02T15:20:00Z"}
    found = patient_status(encounter(), [later], [role("r1", "dr1", FAMILY)], DOS)
    assert not found.established


def test_the_specialty_codes_compare_with_their_system():
    prior = [visit("v1", "2025-05-01", "dr2", "org1")]
    other_system = role("r2", "dr2", None)
    other_system["specialty"] = [{"coding": [{"system": "urn:local", "code": FAMILY}]}]
    roles = [role("r1", "dr1", FAMILY), other_system]
    assert NUCC in str(roles[0])
    assert not patient_status(encounter(), prior, roles, DOS).established
