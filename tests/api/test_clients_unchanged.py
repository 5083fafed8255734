"""What real clients send, accepted as they send it (HAPI FHIR's generic client, fhirpy).

Each case is a request shape one of those clients produces unchanged; on both backends.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import FHIR_JSON, create, patient

MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
IDENT = "https://hospital.example/mrn"


def _patient_with_mrn(mrn: str) -> dict[str, Any]:
    return patient(identifier=[{"system": IDENT, "value": mrn}])


# ---- HAPI generic client: conditional create with an absolute If-None-Exist ----------


def test_if_none_exist_with_the_servers_own_base_url_matches_like_the_plain_form(
    client: TestClient,
) -> None:
    header = {"If-None-Exist": f"http://testserver/fhir/Patient?identifier={IDENT}|mrn-1"}
    first = create(client, _patient_with_mrn("mrn-1"), **header)
    assert first.status_code == 201, first.text
    again = create(client, _patient_with_mrn("mrn-1"), **header)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    typed = create(
        client, _patient_with_mrn("mrn-1"), **{"If-None-Exist": f"Patient?identifier={IDENT}|mrn-1"}
    )
    assert typed.status_code == 200 and typed.json()["id"] == first.json()["id"]
    total = client.get("/fhir/Patient", params={"identifier": f"{IDENT}|mrn-1"}).json()["total"]
    assert total == 1


def test_if_none_exist_naming_another_server_or_type_is_refused_not_ignored(
    client: TestClient,
) -> None:
    other = {"If-None-Exist": f"https://elsewhere.example/fhir/Patient?identifier={IDENT}|x"}
    r = create(client, _patient_with_mrn("x"), **other)
    assert r.status_code == 400
    assert "not this server" in r.json()["issue"][0]["diagnostics"]
    wrong_type = {"If-None-Exist": f"http://testserver/fhir/Practitioner?identifier={IDENT}|x"}
    r = create(client, _patient_with_mrn("x"), **wrong_type)
    assert r.status_code == 400
    assert client.get("/fhir/Patient", params={"identifier": f"{IDENT}|x"}).json()["total"] == 0


# ---- a "+" of a time zone offset that arrived as a space ------------------------------


def test_a_plus_decoded_to_a_space_in_a_date_search_is_the_offset(client: TestClient) -> None:
    assert create(client, patient()).status_code == 201
    # the raw "+" in the query string is decoded to a space, as form encoding says
    r = client.get("/fhir/Patient?_lastUpdated=ge2000-01-01T00:00:00.874+00:00")
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 1
    r = client.get("/fhir/Patient?_lastUpdated=lt2000-01-01T00:00:00+05:30")
    assert r.status_code == 200 and r.json()["total"] == 0


def test_a_plus_decoded_to_a_space_in_since_is_the_offset(client: TestClient) -> None:
    pid = create(client, patient()).json()["id"]
    r = client.get(f"/fhir/Patient/{pid}/_history?_since=2000-01-01T00:00:00.874+00:00")
    assert r.status_code == 200, r.text
    assert len(r.json()["entry"]) == 1
    r = client.get("/fhir/_history?_since=2999-01-01T00:00:00+00:00")
    assert r.status_code == 200 and "entry" not in r.json()


# ---- fhirpy: count() and merge patch ---------------------------------------------------


def test_count_zero_answers_the_total_without_entries(client: TestClient) -> None:
    for _ in range(3):
        assert create(client, patient()).status_code == 201
    bundle = client.get("/fhir/Patient", params={"_count": "0"}).json()
    assert bundle["total"] == 3
    assert "entry" not in bundle


def test_json_merge_patch_changes_removes_and_replaces_members(client: TestClient) -> None:
    pid = create(client, patient(telecom=[{"system": "phone", "value": "1"}])).json()["id"]
    body = {"gender": "male", "birthDate": None, "telecom": [{"system": "email", "value": "a@b"}]}
    r = client.patch(f"/fhir/Patient/{pid}", json=body, headers=MERGE_PATCH)
    assert r.status_code == 200, r.text
    stored = client.get(f"/fhir/Patient/{pid}").json()
    assert stored["gender"] == "male"
    assert "birthDate" not in stored
    assert stored["telecom"] == [{"system": "email", "value": "a@b"}]  # arrays replace
    assert stored["name"] == [{"family": "Test", "given": ["Ada"]}]  # untouched
    assert stored["meta"]["versionId"] == "2"


def test_a_merge_patch_is_validated_and_may_not_change_the_id(client: TestClient) -> None:
    pid = create(client, patient()).json()["id"]
    r = client.patch(f"/fhir/Patient/{pid}", json=["not", "an object"], headers=MERGE_PATCH)
    assert r.status_code == 400
    r = client.patch(f"/fhir/Patient/{pid}", json={"id": "other"}, headers=MERGE_PATCH)
    assert r.status_code == 422
    r = client.patch(f"/fhir/Patient/{pid}", json={"birthDate": "yesterday"}, headers=MERGE_PATCH)
    assert r.status_code in (400, 422)
    assert client.get(f"/fhir/Patient/{pid}").json()["meta"]["versionId"] == "1"


def test_json_patch_still_works_beside_merge_patch(client: TestClient) -> None:
    pid = create(client, patient()).json()["id"]
    ops = [{"op": "replace", "path": "/gender", "value": "other"}]
    r = client.patch(
        f"/fhir/Patient/{pid}", json=ops, headers={"Content-Type": "application/json-patch+json"}
    )
    assert r.status_code == 200 and r.json()["gender"] == "other"


# ---- _elements / _summary on a read; operations that need POST ------------------------


def test_elements_on_a_plain_read_trims_and_tags_subsetted(client: TestClient) -> None:
    pid = create(client, patient()).json()["id"]
    r = client.get(f"/fhir/Patient/{pid}", params={"_elements": "gender"})
    assert r.status_code == 200
    body = r.json()
    assert body["gender"] == "female" and "name" not in body and "birthDate" not in body
    assert body["id"] == pid
    assert any(t["code"] == "SUBSETTED" for t in body["meta"]["tag"])
    full = client.get(f"/fhir/Patient/{pid}").json()
    assert "name" in full and "tag" not in full["meta"]
    assert client.get(f"/fhir/Patient/{pid}", params={"_summary": "nonsense"}).status_code == 400


def test_summary_true_keeps_the_contained_resources_a_kept_element_refers_to(
    client: TestClient,
) -> None:
    task = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "contained": [{"resourceType": "Practitioner", "id": "who"}],
        "owner": {"reference": "#who"},  # Task.owner is a summary element
    }
    tid = create(client, task).json()["id"]
    body = client.get(f"/fhir/Task/{tid}", params={"_summary": "true"}).json()
    assert body["owner"] == {"reference": "#who"}
    assert [c["id"] for c in body["contained"]] == ["who"]
    listed = client.get("/fhir/Task", params={"_summary": "true"}).json()["entry"][0]["resource"]
    assert [c["id"] for c in listed["contained"]] == ["who"]


def test_get_on_generate_claim_answers_405_saying_it_needs_post(client: TestClient) -> None:
    r = client.get("/fhir/Encounter/e1/$generate-claim")
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    assert "POST" in r.json()["issue"][0]["diagnostics"]


# ---- search -----------------------------------------------------------------------------


def test_token_text_search_matches_a_word_of_the_coding_display(client: TestClient) -> None:
    condition = {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/p1"},
        "code": {
            "coding": [
                {
                    "system": "http://snomed.info/sct",
                    "code": "10509002",
                    "display": "Acute bronchitis (disorder)",
                }
            ]
        },
    }
    assert create(client, condition).status_code == 201
    for term in ("bronchitis", "acute bronch", "Acute"):
        found = client.get("/fhir/Condition", params={"code:text": term}).json()
        assert found["total"] == 1, term
    assert client.get("/fhir/Condition", params={"code:text": "asthma"}).json()["total"] == 0


def test_an_unknown_parameter_warning_entry_has_a_full_url(client: TestClient) -> None:
    bundle = client.get("/fhir/Patient", params={"bogus": "1"}).json()
    outcome = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcome) == 1
    assert outcome[0]["fullUrl"].startswith("urn:uuid:")
    assert all("fullUrl" in e for e in bundle["entry"])


def test_capability_statement_declares_merge_patch_and_export_per_level(
    client: TestClient,
) -> None:
    statement = client.get("/fhir/metadata", headers=FHIR_JSON).json()
    assert "application/merge-patch+json" in statement["patchFormat"]
    rest = statement["rest"][0]
    system_ops = [op["definition"] for op in rest["operation"] if op["name"] == "export"]
    assert system_ops == ["http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"]
    by_type = {r["type"]: r for r in rest["resource"]}
    for rtype, definition in (("Patient", "patient-export"), ("Group", "group-export")):
        ops = [op["definition"] for op in by_type[rtype]["operation"] if op["name"] == "export"]
        assert ops == [f"http://hl7.org/fhir/uv/bulkdata/OperationDefinition/{definition}"]
