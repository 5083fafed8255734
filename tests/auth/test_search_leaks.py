"""A patient-context token searching for other patients' data finds nothing, by any route."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.auth.conftest import mint

LABS = (
    "patient/Observation.rs?category="
    "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
)


def _ids(bundle: dict[str, Any]) -> set[str]:
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
    }


def _search(client: TestClient, url: str, headers: dict[str, str]) -> dict[str, Any]:
    r = client.get(url, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_type_search_returns_only_the_compartment_and_counts_only_it(seeded: TestClient):
    me = mint(seeded, "patient/*.rs", patient="p1")
    bundle = _search(seeded, "/fhir/Claim?_total=accurate", me)
    assert _ids(bundle) == {"Claim/claim-p1"}
    assert bundle.get("total", 1) == 1
    assert _ids(_search(seeded, "/fhir/Claim?patient=p2", me)) == set()
    assert _ids(_search(seeded, "/fhir/Claim?_id=claim-p2", me)) == set()


def test_includes_and_revincludes_stay_in_the_compartment(seeded: TestClient):
    me = mint(seeded, "patient/*.rs", patient="p1")
    bundle = _search(seeded, "/fhir/Claim?_include=Claim:patient", me)
    assert _ids(bundle) == {"Claim/claim-p1", "Patient/p1"}
    bundle = _search(seeded, "/fhir/Patient?_revinclude=Claim:patient", me)
    assert _ids(bundle) == {"Patient/p1", "Claim/claim-p1"}
    bundle = _search(seeded, "/fhir/Coverage?_include=Coverage:beneficiary", me)
    assert _ids(bundle) == {"Coverage/cov-p1", "Patient/p1"}


def test_chains_and_has_cannot_probe_other_patients(seeded: TestClient):
    me = mint(seeded, "patient/*.rs", patient="p1")
    assert _ids(_search(seeded, "/fhir/Claim?patient._id=p2", me)) == set()
    assert _ids(_search(seeded, "/fhir/Patient?_has:Claim:patient:_id=claim-p2", me)) == set()
    assert _ids(_search(seeded, "/fhir/Patient?_has:Claim:patient:_id=claim-p1", me)) == {
        "Patient/p1"
    }


def test_a_chain_through_a_type_the_token_cannot_search_is_refused(seeded: TestClient):
    claims_only = mint(seeded, "patient/Claim.rs", patient="p1")
    r = seeded.get("/fhir/Claim?patient._id=p1", headers=claims_only)
    assert r.status_code == 403
    r = seeded.get("/fhir/Claim?_has:Coverage:beneficiary:_id=cov-p1", headers=claims_only)
    assert r.status_code in (400, 403)


def test_system_and_compartment_search_stay_in_the_compartment(seeded: TestClient):
    me = mint(seeded, "patient/*.rs", patient="p1")
    bundle = _search(seeded, "/fhir?_type=Claim,Coverage", me)
    assert _ids(bundle) == {"Claim/claim-p1", "Coverage/cov-p1"}
    assert _ids(_search(seeded, "/fhir/Patient/p2/Claim", me)) == set()
    assert _ids(_search(seeded, "/fhir/Patient/p1/Claim", me)) == {"Claim/claim-p1"}


def test_paging_links_never_reach_other_patients(seeded: TestClient):
    me = mint(seeded, "patient/*.rs", patient="p1")
    seen: set[str] = set()
    url: str | None = "/fhir/Observation?_count=1"
    while url:
        bundle = _search(seeded, url, me)
        seen |= _ids(bundle)
        nxt = [link["url"] for link in bundle.get("link", []) if link["relation"] == "next"]
        url = nxt[0].split("testserver", 1)[1] if nxt else None
    assert seen == {"Observation/lab-p1", "Observation/soc-p1"}


def test_query_restricted_scope_limits_search(seeded: TestClient):
    me = mint(seeded, LABS, patient="p1")
    assert _ids(_search(seeded, "/fhir/Observation", me)) == {"Observation/lab-p1"}


def test_system_token_sees_everything(seeded: TestClient):
    admin = mint(seeded, "system/*.rs")
    assert _ids(_search(seeded, "/fhir/Claim", admin)) == {"Claim/claim-p1", "Claim/claim-p2"}
