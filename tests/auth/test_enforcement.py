"""Scopes enforced by the repository facade's policy, on every interaction."""

from __future__ import annotations

import base64

from fastapi.testclient import TestClient

from server.validation import validate_resource
from tests.auth.conftest import FHIR_JSON, claim_for, mint, put


def test_patient_token_reads_its_own_compartment(seeded: TestClient):
    me = mint(seeded, "patient/*.rs", patient="p1")
    assert seeded.get("/fhir/Claim/claim-p1", headers=me).status_code == 200
    assert seeded.get("/fhir/Coverage/cov-p1", headers=me).status_code == 200
    assert seeded.get("/fhir/Patient/p1", headers=me).status_code == 200


def test_another_patients_resources_look_missing(seeded: TestClient):
    me = mint(seeded, "patient/*.rs", patient="p1")
    for path in ("/fhir/Claim/claim-p2", "/fhir/Patient/p2", "/fhir/Coverage/cov-p2"):
        r = seeded.get(path, headers=me)
        assert r.status_code == 404, path
        assert "p2" not in r.text.replace(path.rsplit("/", 1)[1], "")
    assert seeded.get("/fhir/Claim/claim-p2/_history/1", headers=me).status_code == 404
    assert seeded.get("/fhir/Claim/claim-p2/_history", headers=me).status_code == 404


def test_type_not_in_scope_is_a_403_operation_outcome(seeded: TestClient):
    only_claims = mint(seeded, "patient/Claim.rs", patient="p1")
    r = seeded.get("/fhir/Coverage/cov-p1", headers=only_claims)
    assert r.status_code == 403
    assert r.json()["resourceType"] == "OperationOutcome"
    assert r.json()["issue"][0]["code"] == "forbidden"
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]


def test_patient_scope_without_patient_context_grants_nothing(seeded: TestClient):
    r = seeded.get("/fhir/Claim/claim-p1", headers=mint(seeded, "patient/*.rs"))
    assert r.status_code == 403


def test_read_scope_cannot_write(seeded: TestClient):
    reader = mint(seeded, "system/*.read")
    r = put(seeded, reader, {**claim_for("p1"), "id": "claim-p1"})
    assert r.status_code == 403
    r = seeded.delete("/fhir/Claim/claim-p1", headers=reader)
    assert r.status_code == 403


def test_v1_write_and_v2_letters_are_equivalent(seeded: TestClient):
    for scope in ("system/Claim.write", "system/Claim.cud"):
        writer = mint(seeded, scope)
        r = seeded.post("/fhir/Claim", json=claim_for("p1"), headers={**writer, **FHIR_JSON})
        assert r.status_code == 201, (scope, r.text)
        assert seeded.get(r.headers["location"], headers=writer).status_code == 403  # no read


def test_patient_token_cannot_write_into_another_compartment(seeded: TestClient):
    me = mint(seeded, "patient/*.cruds", patient="p1")
    r = seeded.post("/fhir/Claim", json=claim_for("p2"), headers={**me, **FHIR_JSON})
    assert r.status_code == 403
    assert seeded.post("/fhir/Claim", json=claim_for("p1"), headers={**me, **FHIR_JSON}).is_success
    # Nor overwrite another patient's resource, nor move its own one out of the compartment.
    assert put(seeded, me, {**claim_for("p1"), "id": "claim-p2"}).status_code == 404
    assert put(seeded, me, {**claim_for("p2"), "id": "claim-p1"}).status_code == 403
    patch = [{"op": "replace", "path": "/patient/reference", "value": "Patient/p2"}]
    r = seeded.patch(
        "/fhir/Claim/claim-p1",
        json=patch,
        headers={**me, "Content-Type": "application/json-patch+json"},
    )
    assert r.status_code == 403
    assert seeded.delete("/fhir/Claim/claim-p2", headers=me).status_code == 404


def test_scopes_combine_as_a_union(seeded: TestClient):
    """patient/*.read together with system/*.read must not narrow access to the patient."""
    both = mint(seeded, "patient/*.read system/*.read", patient="p1")
    assert seeded.get("/fhir/Claim/claim-p2", headers=both).status_code == 200
    claims_only = mint(seeded, "patient/Claim.rs patient/Coverage.rs", patient="p1")
    assert seeded.get("/fhir/Coverage/cov-p1", headers=claims_only).status_code == 200


def test_user_scopes_reach_the_users_patients(seeded: TestClient):
    guardian = mint(
        seeded,
        "user/*.rs",
        subject="guardian",
        fhir_user="RelatedPerson/rp1",
        user_patients=["p1"],
    )
    assert seeded.get("/fhir/Claim/claim-p1", headers=guardian).status_code == 200
    assert seeded.get("/fhir/Claim/claim-p2", headers=guardian).status_code == 404
    clerk = mint(seeded, "user/*.rs", subject="clerk", fhir_user="Practitioner/pr1")
    assert seeded.get("/fhir/Claim/claim-p2", headers=clerk).status_code == 200


def test_v2_query_restricted_scope(seeded: TestClient):
    labs = "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
    me = mint(seeded, labs, patient="p1")
    assert seeded.get("/fhir/Observation/lab-p1", headers=me).status_code == 200
    assert seeded.get("/fhir/Observation/soc-p1", headers=me).status_code == 404
    assert seeded.get("/fhir/Observation/lab-p2", headers=me).status_code == 404


def test_history_shows_only_the_compartment(seeded: TestClient):
    me = mint(seeded, "patient/*.rs", patient="p1")
    bundle = seeded.get("/fhir/Claim/_history", headers=me).json()
    ids = {e["resource"]["id"] for e in bundle.get("entry", [])}
    assert ids == {"claim-p1"}
    everything = seeded.get("/fhir/_history?_count=100", headers=me).json()
    seen = {e["resource"]["id"] for e in everything.get("entry", []) if "resource" in e}
    assert seen and all("p2" not in rid for rid in seen), seen
    assert not any(e["resource"]["resourceType"] == "AuditEvent" for e in everything["entry"])


def test_system_history_never_shows_internal_records(seeded: TestClient):
    admin = mint(seeded, "system/*.rs")
    bundle = seeded.get("/fhir/_history?_count=1000", headers=admin).json()
    types = {e["request"]["url"].split("/")[0] for e in bundle["entry"]}
    assert not any(t.startswith("x-billable") for t in types), types
    assert "AuditEvent" not in types  # wildcards do not cover the audit trail


def test_audit_trail_is_readable_only_with_an_audit_scope(seeded: TestClient):
    assert (
        seeded.get("/fhir/AuditEvent/000000000001", headers=mint(seeded, "system/*.rs")).status_code
        == 403
    )
    auditor = mint(seeded, "system/AuditEvent.rs")
    r = seeded.get("/fhir/AuditEvent/000000000001", headers=auditor)
    assert r.status_code == 200
    assert r.json()["resourceType"] == "AuditEvent"


def test_audit_trail_cannot_be_written_through_the_api(seeded: TestClient):
    auditor = mint(seeded, "system/AuditEvent.cruds system/*.cruds")
    event = seeded.get("/fhir/AuditEvent/000000000001", headers=auditor).json()
    event["outcome"] = "0"
    assert put(seeded, auditor, event).status_code == 403
    assert seeded.delete("/fhir/AuditEvent/000000000001", headers=auditor).status_code == 403


def test_writes_carry_a_provenance_naming_the_client(seeded: TestClient):
    writer = mint(seeded, "system/*.cruds", client_id="payer")
    r = seeded.post("/fhir/Claim", json=claim_for("p1"), headers={**writer, **FHIR_JSON})
    location = r.headers["location"].split("/fhir/")[1]
    history = seeded.get("/fhir/Provenance/_history?_count=100", headers=writer).json()
    targets = {
        t["reference"]: e["resource"] for e in history["entry"] for t in e["resource"]["target"]
    }
    provenance = targets[location]
    validate_resource(provenance)
    agent = provenance["agent"][-1]["who"]["identifier"]
    assert agent == {"system": "urn:billable:oauth-client", "value": "payer"}


def test_transaction_entries_are_authorised_one_by_one(seeded: TestClient):
    me = mint(seeded, "patient/*.rs", patient="p1")
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": "Claim/claim-p1"}},
            {"request": {"method": "GET", "url": "Claim/claim-p2"}},
            {"request": {"method": "POST", "url": "Claim"}, "resource": claim_for("p1")},
        ],
    }
    r = seeded.post("/fhir", json=batch, headers={**me, **FHIR_JSON})
    assert r.status_code == 200, r.text
    statuses = [e["response"]["status"] for e in r.json()["entry"]]
    assert statuses[0].startswith("200")
    assert statuses[1].startswith("404")
    assert statuses[2].startswith("403")
    transaction = {**batch, "type": "transaction", "entry": batch["entry"][2:]}
    r = seeded.post("/fhir", json=transaction, headers={**me, **FHIR_JSON})
    assert r.status_code == 403


def test_no_phi_in_refusals(seeded: TestClient):
    me = mint(seeded, "patient/*.rs", patient="p1")
    r = seeded.get("/fhir/Claim/claim-p2", headers=me)
    assert "Patient/p2" not in r.text
    # The audit of that refusal names the entity asked for, not its content.
    auditor = mint(seeded, "system/AuditEvent.rs")
    last = seeded.get("/fhir/AuditEvent/_history?_count=5", headers=auditor).json()["entry"]
    assert any(
        e["resource"].get("entity", [{}])[0].get("what", {}).get("reference") == "Claim/claim-p2"
        for e in last
    )
    assert base64  # (queries are stored base64-encoded; see test_audit)
