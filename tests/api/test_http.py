"""HTTP behaviour: content negotiation, body limits, Prefer, conditional reads, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import orjson
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from tests.api.conftest import FHIR_JSON, claim, create, patient


def test_json_and_fhir_json_are_both_accepted_and_produced(client: TestClient):
    r = client.post("/fhir/Patient", json=patient(), headers={"Content-Type": "application/json"})
    assert r.status_code == 201
    rid = r.json()["id"]
    plain = client.get(f"/fhir/Patient/{rid}", headers={"Accept": "application/json"})
    assert plain.headers["content-type"] == "application/json; charset=utf-8"
    fhir = client.get(f"/fhir/Patient/{rid}", headers={"Accept": "application/fhir+json"})
    assert fhir.headers["content-type"] == "application/fhir+json; charset=utf-8"
    browser = client.get(f"/fhir/Patient/{rid}", headers={"Accept": "text/html,*/*;q=0.8"})
    assert browser.status_code == 200


def test_format_parameter_overrides_accept(client: TestClient):
    rid = create(client, patient()).json()["id"]
    r = client.get(f"/fhir/Patient/{rid}?_format=json", headers={"Accept": "application/fhir+xml"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/fhir+json")
    r = client.get(f"/fhir/Patient/{rid}?_format=application/json")
    assert r.headers["content-type"].startswith("application/json")


def test_asking_for_xml_is_406(client: TestClient):
    rid = create(client, patient()).json()["id"]
    for kwargs in (
        {"headers": {"Accept": "application/fhir+xml"}},
        {"params": {"_format": "xml"}},
    ):
        r = client.get(f"/fhir/Patient/{rid}", **kwargs)
        assert r.status_code == 406
        assert r.json()["resourceType"] == "OperationOutcome"


def test_sending_xml_or_no_content_type_is_415(client: TestClient):
    xml = "<Patient xmlns='http://hl7.org/fhir'/>"
    r = client.post("/fhir/Patient", content=xml, headers={"Content-Type": "application/fhir+xml"})
    assert r.status_code == 415
    r = client.post("/fhir/Patient", content=orjson.dumps(patient()))
    assert r.status_code == 415


def test_body_over_the_limit_is_413(tmp_path: Path):
    settings = Settings(store_url=f"sqlite:///{tmp_path / 'x.db'}", max_body_bytes=1000)
    with TestClient(create_app(settings)) as small:
        r = small.post("/fhir/Claim", json=claim(items=20), headers=FHIR_JSON)
        assert r.status_code == 413
        assert r.json()["issue"][0]["code"] == "too-costly"
        assert small.post("/fhir/Patient", json=patient(), headers=FHIR_JSON).status_code == 201


def test_body_over_the_limit_without_content_length_is_413(tmp_path: Path):
    settings = Settings(store_url=f"sqlite:///{tmp_path / 'x.db'}", max_body_bytes=1000)
    with TestClient(create_app(settings)) as small:

        def chunks():
            data = orjson.dumps(claim(items=20))
            for i in range(0, len(data), 100):
                yield data[i : i + 100]

        r = small.post("/fhir/Claim", content=chunks(), headers=FHIR_JSON)
        assert r.status_code == 413


def test_pretty_output(client: TestClient):
    rid = create(client, patient()).json()["id"]
    pretty = client.get(f"/fhir/Patient/{rid}?_pretty=true")
    assert pretty.text.startswith('{\n  "resourceType"')
    assert "\n" not in client.get(f"/fhir/Patient/{rid}").text


def test_prefer_return_minimal_representation_and_operation_outcome(client: TestClient):
    minimal = create(client, patient(), Prefer="return=minimal")
    assert minimal.status_code == 201
    assert minimal.content == b""
    assert minimal.headers["location"]
    representation = create(client, patient(), Prefer="return=representation")
    assert representation.json()["resourceType"] == "Patient"
    outcome = create(client, patient(), Prefer="return=OperationOutcome")
    assert outcome.status_code == 201
    assert outcome.json()["resourceType"] == "OperationOutcome"
    assert outcome.json()["issue"][0]["severity"] == "information"


def test_if_none_match_on_read_is_304_when_the_version_is_current(client: TestClient):
    rid = create(client, patient()).json()["id"]
    r = client.get(f"/fhir/Patient/{rid}", headers={"If-None-Match": 'W/"1"'})
    assert r.status_code == 304
    assert r.content == b""
    client.put(f"/fhir/Patient/{rid}", json=patient(id=rid), headers=FHIR_JSON)
    assert client.get(f"/fhir/Patient/{rid}", headers={"If-None-Match": 'W/"1"'}).status_code == 200


def test_if_modified_since_on_read(client: TestClient):
    rid = create(client, patient()).json()["id"]
    later = format_datetime(datetime.now(UTC) + timedelta(minutes=5), usegmt=True)
    earlier = format_datetime(datetime.now(UTC) - timedelta(days=1), usegmt=True)
    assert (
        client.get(f"/fhir/Patient/{rid}", headers={"If-Modified-Since": later}).status_code == 304
    )
    assert (
        client.get(f"/fhir/Patient/{rid}", headers={"If-Modified-Since": earlier}).status_code
        == 200
    )


def test_malformed_json_is_400(client: TestClient):
    r = client.post("/fhir/Patient", content=b'{"resourceType": "Patient",', headers=FHIR_JSON)
    assert r.status_code == 400
    assert r.json()["issue"][0]["code"] == "structure"
    r = client.post("/fhir/Patient", content=b"[1, 2]", headers=FHIR_JSON)
    assert r.status_code == 400


def test_resource_type_not_matching_the_url_is_400(client: TestClient):
    r = client.post("/fhir/Patient", json={"resourceType": "Observation"}, headers=FHIR_JSON)
    assert r.status_code == 400
    assert "Observation" in r.json()["issue"][0]["diagnostics"]


def test_invalid_content_lists_every_problem_with_a_fhirpath_location(client: TestClient):
    bad = claim(items=2)
    bad["item"][0]["sequence"] = "first"
    del bad["patient"]
    bad["item"][1]["unknownElement"] = True
    bad["created"] = "02/11/2026"
    r = client.post("/fhir/Claim", json=bad, headers=FHIR_JSON)
    assert r.status_code == 400
    found = {e: i["code"] for i in r.json()["issue"] for e in i.get("expression", [])}
    assert found["Claim.item[0].sequence"] == "value"
    assert found["Claim.patient"] == "required"
    assert found["Claim.item[1].unknownElement"] == "structure"
    assert found["Claim.created"] == "value"


def test_empty_arrays_objects_and_strings_are_invalid(client: TestClient):
    r = create(client, patient(name=[], telecom=[{}], gender=""))
    assert r.status_code == 400
    expressions = {e for i in r.json()["issue"] for e in i["expression"]}
    assert {"Patient.name", "Patient.telecom[0]", "Patient.gender"} <= expressions


def test_a_failed_write_stores_nothing(client: TestClient):
    bad = claim()
    bad["item"][0]["sequence"] = "x"
    assert client.post("/fhir/Claim", json=bad, headers=FHIR_JSON).status_code == 400
    assert (
        client.put("/fhir/Claim/c1", json={**bad, "id": "c1"}, headers=FHIR_JSON).status_code == 400
    )
    assert "entry" not in client.get("/fhir/_history").json()
    assert client.get("/fhir/Claim/c1").status_code == 404


def test_unsupported_method_and_unknown_path_are_operation_outcomes(client: TestClient):
    r = client.request("POST", "/fhir/metadata/x/y/z")
    assert r.status_code in (404, 405)
    assert r.json()["resourceType"] == "OperationOutcome"
    r = client.get("/nothing-here")
    assert r.status_code == 404
    assert r.json()["resourceType"] == "OperationOutcome"
    r = client.request("PATCH", "/fhir/Patient")
    assert r.status_code == 405
    assert r.json()["resourceType"] == "OperationOutcome"


def test_malformed_if_match_is_400(client: TestClient):
    rid = create(client, patient()).json()["id"]
    r = client.put(
        f"/fhir/Patient/{rid}", json=patient(id=rid), headers={**FHIR_JSON, "If-Match": "abc"}
    )
    assert r.status_code == 400


def test_healthz_names_the_backend(client: TestClient, settings: Settings):
    r = client.get("/healthz")
    assert r.status_code == 200
    expected = "mongodb" if settings.store_url.startswith("mongodb") else "sqlite"
    assert r.json() == {"status": "ok", "store": expected}


def test_whitespace_only_strings_are_invalid_however_they_are_escaped(client: TestClient):
    for value in (" ", "\n", " \t\r\n"):
        r = create(client, patient(gender=value))
        assert r.status_code == 400, repr(value)
        assert r.json()["issue"][0]["expression"] == ["Patient.gender"]
