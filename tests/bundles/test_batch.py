"""Batches: independent entries, each answered on its own, in request order."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.bundles.conftest import (
    MRN,
    count,
    encounter,
    get,
    patient,
    post,
    post_bundle,
    put,
    transaction,
)


def test_batch_with_mixed_outcomes(client: TestClient):
    post_bundle(client, transaction(post(patient("1"))))
    invalid = patient("2", birthDate="yesterday")
    bundle = transaction(
        post(patient("3")),
        post(invalid),
        get("Patient/nobody"),
        post(patient("1", gender="male"), ifNoneExist=f"identifier={MRN}|1"),
        put(patient("4", id="b4"), "Patient/b4"),
        {"request": {"method": "TRACE", "url": "Patient"}},
        kind="batch",
    )
    r = post_bundle(client, bundle)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses == [
        "201 Created",
        "400 Bad Request",
        "404 Not Found",
        "200 OK",
        "201 Created",
        "400 Bad Request",
    ]
    bad = body["entry"][1]["response"]["outcome"]["issue"][0]
    assert bad["expression"] == ["Bundle.entry[1].resource.birthDate"]
    assert body["entry"][2]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert body["entry"][3]["resource"]["gender"] == "female"
    assert count(client, "Patient") == 3  # 1 before, plus entries 0 and 4


def test_batch_entries_may_not_refer_to_each_other(client: TestClient):
    p = "urn:uuid:5b1c2c1e-0000-4000-8000-000000000001"
    bundle = transaction(
        post(patient("5"), p),
        post(encounter(p)),
        post(encounter(f"Patient?identifier={MRN}|5")),
        kind="batch",
    )
    r = post_bundle(client, bundle)
    assert r.status_code == 200
    entries = r.json()["entry"]
    assert [e["response"]["status"] for e in entries] == [
        "201 Created",
        "400 Bad Request",
        "400 Bad Request",
    ]
    assert "transaction" in entries[1]["response"]["outcome"]["issue"][0]["diagnostics"]
    assert count(client, "Encounter") == 0
