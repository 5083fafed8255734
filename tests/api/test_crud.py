"""read, vread, create, update, delete and patch, through the ASGI app."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import FHIR_JSON, claim, create, patient


def test_create_assigns_id_version_and_answers_201_with_location_and_etag(client: TestClient):
    r = create(client, patient(id="client-chosen-is-ignored"))
    assert r.status_code == 201
    body = r.json()
    assert body["id"] != "client-chosen-is-ignored"
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert r.headers["etag"] == 'W/"1"'
    assert r.headers["location"] == f"http://testserver/fhir/Patient/{body['id']}/_history/1"
    assert r.headers["last-modified"].endswith("GMT")
    assert r.headers["content-type"] == "application/fhir+json; charset=utf-8"


def test_read_serves_exactly_what_create_returned(client: TestClient):
    created = create(client, claim(items=3))
    rid = created.json()["id"]
    r = client.get(f"/fhir/Claim/{rid}")
    assert r.status_code == 200
    assert r.content == created.content
    assert r.headers["etag"] == 'W/"1"'


def test_read_of_unknown_id_is_404_operation_outcome(client: TestClient):
    r = client.get("/fhir/Patient/does-not-exist")
    assert r.status_code == 404
    assert r.json()["resourceType"] == "OperationOutcome"
    assert r.json()["issue"][0]["code"] == "not-found"


def test_unknown_resource_type_in_url_is_404(client: TestClient):
    for method, kwargs in [("GET", {}), ("POST", {"json": {"resourceType": "Foo"}})]:
        r = client.request(method, "/fhir/Foo/1" if method == "GET" else "/fhir/Foo", **kwargs)
        assert r.status_code == 404
        assert "Foo" in r.json()["issue"][0]["diagnostics"]


def test_update_creates_a_new_version_and_vread_reads_each(client: TestClient):
    rid = create(client, patient()).json()["id"]
    r = client.put(f"/fhir/Patient/{rid}", json=patient(id=rid, gender="other"), headers=FHIR_JSON)
    assert r.status_code == 200
    assert r.json()["meta"]["versionId"] == "2"
    assert r.headers["location"].endswith(f"/Patient/{rid}/_history/2")
    assert client.get(f"/fhir/Patient/{rid}/_history/1").json()["gender"] == "female"
    assert client.get(f"/fhir/Patient/{rid}/_history/2").json()["gender"] == "other"
    assert client.get(f"/fhir/Patient/{rid}").json()["gender"] == "other"
    assert client.get(f"/fhir/Patient/{rid}/_history/3").status_code == 404
    assert client.get(f"/fhir/Patient/{rid}/_history/x").status_code == 404


def test_update_as_create_keeps_the_client_chosen_id(client: TestClient):
    r = client.put("/fhir/Patient/mrn-12345", json=patient(id="mrn-12345"), headers=FHIR_JSON)
    assert r.status_code == 201
    assert r.json()["id"] == "mrn-12345"
    assert r.json()["meta"]["versionId"] == "1"
    assert client.get("/fhir/Patient/mrn-12345").status_code == 200


def test_update_with_body_id_different_from_url_is_400(client: TestClient):
    r = client.put("/fhir/Patient/a", json=patient(id="b"), headers=FHIR_JSON)
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["Patient.id"]
    assert client.get("/fhir/Patient/a").status_code == 404


def test_update_without_id_in_body_is_400(client: TestClient):
    assert client.put("/fhir/Patient/a", json=patient(), headers=FHIR_JSON).status_code == 400


def test_if_match_with_a_stale_version_is_412_and_changes_nothing(client: TestClient):
    rid = create(client, patient()).json()["id"]
    ok = client.put(
        f"/fhir/Patient/{rid}",
        json=patient(id=rid, gender="male"),
        headers={**FHIR_JSON, "If-Match": 'W/"1"'},
    )
    assert ok.status_code == 200
    stale = client.put(
        f"/fhir/Patient/{rid}",
        json=patient(id=rid, gender="other"),
        headers={**FHIR_JSON, "If-Match": 'W/"1"'},
    )
    assert stale.status_code == 412
    assert client.get(f"/fhir/Patient/{rid}").json()["gender"] == "male"


def test_delete_then_read_is_410_gone_and_history_is_kept(client: TestClient):
    rid = create(client, patient()).json()["id"]
    r = client.delete(f"/fhir/Patient/{rid}")
    assert r.status_code == 204
    assert r.headers["etag"] == 'W/"2"'
    gone = client.get(f"/fhir/Patient/{rid}")
    assert gone.status_code == 410
    assert gone.json()["issue"][0]["code"] == "deleted"
    assert client.get(f"/fhir/Patient/{rid}/_history/1").status_code == 200
    assert client.get(f"/fhir/Patient/{rid}/_history/2").status_code == 410
    # deleting again changes nothing; a resource never stored is 404
    assert client.delete(f"/fhir/Patient/{rid}").status_code == 204
    assert (
        client.get(f"/fhir/Patient/{rid}/_history").json()["entry"][0]["response"]["etag"]
        == 'W/"2"'
    )
    assert client.delete("/fhir/Patient/never-was").status_code == 404


def test_update_after_delete_recreates_with_the_next_version(client: TestClient):
    rid = create(client, patient()).json()["id"]
    client.delete(f"/fhir/Patient/{rid}")
    r = client.put(f"/fhir/Patient/{rid}", json=patient(id=rid), headers=FHIR_JSON)
    assert r.status_code == 201
    assert r.json()["meta"]["versionId"] == "3"


def test_delete_with_stale_if_match_is_412(client: TestClient):
    rid = create(client, patient()).json()["id"]
    assert client.delete(f"/fhir/Patient/{rid}", headers={"If-Match": 'W/"7"'}).status_code == 412
    assert client.get(f"/fhir/Patient/{rid}").status_code == 200


PATCH = {"Content-Type": "application/json-patch+json"}


def test_json_patch_changes_the_resource_and_makes_a_version(client: TestClient):
    rid = create(client, patient()).json()["id"]
    ops = [
        {"op": "replace", "path": "/gender", "value": "male"},
        {"op": "add", "path": "/name/0/given/-", "value": "Lovelace"},
    ]
    r = client.patch(f"/fhir/Patient/{rid}", json=ops, headers=PATCH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["gender"] == "male"
    assert body["name"][0]["given"] == ["Ada", "Lovelace"]
    assert body["meta"]["versionId"] == "2"


def test_json_patch_whose_test_fails_is_422_and_changes_nothing(client: TestClient):
    rid = create(client, patient()).json()["id"]
    ops = [
        {"op": "test", "path": "/gender", "value": "male"},
        {"op": "replace", "path": "/gender", "value": "other"},
    ]
    assert client.patch(f"/fhir/Patient/{rid}", json=ops, headers=PATCH).status_code == 422
    assert client.get(f"/fhir/Patient/{rid}").json()["meta"]["versionId"] == "1"


def test_json_patch_that_makes_the_resource_invalid_is_400(client: TestClient):
    rid = create(client, patient()).json()["id"]
    ops = [{"op": "replace", "path": "/birthDate", "value": "1980-02-30x"}]
    r = client.patch(f"/fhir/Patient/{rid}", json=ops, headers=PATCH)
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["Patient.birthDate"]


def test_json_patch_may_not_change_the_id(client: TestClient):
    rid = create(client, patient()).json()["id"]
    ops = [{"op": "replace", "path": "/id", "value": "other"}]
    assert client.patch(f"/fhir/Patient/{rid}", json=ops, headers=PATCH).status_code == 422


def test_json_patch_with_wrong_content_type_is_415_and_not_an_array_is_400(client: TestClient):
    rid = create(client, patient()).json()["id"]
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    assert client.patch(f"/fhir/Patient/{rid}", json=ops, headers=FHIR_JSON).status_code == 415
    r = client.patch(f"/fhir/Patient/{rid}", json={"op": "x"}, headers=PATCH)
    assert r.status_code == 400


def test_json_patch_of_missing_or_deleted_resource(client: TestClient):
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    assert client.patch("/fhir/Patient/nope", json=ops, headers=PATCH).status_code == 404
    rid = create(client, patient()).json()["id"]
    client.delete(f"/fhir/Patient/{rid}")
    assert client.patch(f"/fhir/Patient/{rid}", json=ops, headers=PATCH).status_code == 410


def test_every_r4_resource_type_is_served_generically(client: TestClient):
    from server.spec.resources import resource_types

    assert len(resource_types()) == 146
    # One type R4B still has and one that only R4 has (validated by the R4 JSON Schema).
    for resource in (
        {"resourceType": "Basic", "code": {"text": "note"}},
        {"resourceType": "MedicinalProduct", "name": [{"productName": "Example"}]},
        {"resourceType": "SubstancePolymer", "class": {"text": "x"}},
    ):
        r = create(client, resource)
        assert r.status_code == 201, r.text
        assert client.get(f"/fhir/{resource['resourceType']}/{r.json()['id']}").status_code == 200


def test_r4_only_types_are_validated_against_the_r4_schema(client: TestClient):
    r = create(client, {"resourceType": "MedicinalProduct", "name": [{"productNam": "typo"}]})
    assert r.status_code == 400
    assert any("MedicinalProduct.name[0]" in e for i in r.json()["issue"] for e in i["expression"])
