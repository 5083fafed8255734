"""Large bundles are split into entries instead of parsed whole (server.bundles.split).

The split path is taken for bodies of at least ``SPLIT_THRESHOLD`` bytes; these tests
lower the threshold so that small bundles take it, and check that it answers exactly as
parsing the body whole does, refuses what whole parsing refuses, and falls back to whole
parsing whenever the scan cannot be sure of the entry array.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

import server.api.body as body_module
import server.bundles.split as split_module
from server.api.body import MAX_DEPTH
from server.bundles.split import split_bundle
from server.storage.port import VersionConflict
from tests.bundles.conftest import (
    FHIR_JSON,
    SYNTHEA,
    encounter,
    patient,
    post,
    put,
    transaction,
)


@pytest.fixture
def split_always(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(body_module, "SPLIT_THRESHOLD", 0)


def send(client: TestClient, body: bytes) -> Any:
    return client.post("/fhir", content=body, headers=FHIR_JSON)


def count(client: TestClient, rtype: str) -> int:
    return int(client.get(f"/fhir/{rtype}?_summary=count").json()["total"])


def test_spans_are_the_entries_whatever_the_strings_and_spacing_hold():
    tricky = {"text": 'a "quoted" ] } [ { \\ value', "div": "{[}]"}
    bundle = transaction(
        post(patient("1", name=[{"family": 'Brace}"]'}]), "urn:uuid:a"),
        put(patient("2", id="p2", extension=[{"url": "urn:x", "valueString": "]]"}]), "Patient/p2"),
        post(encounter("urn:uuid:a", **tricky)),
    )
    for raw in (orjson.dumps(bundle), orjson.dumps(bundle, option=orjson.OPT_INDENT_2)):
        split = split_bundle(raw)
        assert split is not None
        assert split.envelope["type"] == "transaction"
        assert [orjson.loads(raw[s:e]) for s, e in split.spans] == bundle["entry"]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"resourceType":"Bundle","type":"batch","entr\\u0079":[{"request":{}}]}',
        b'{"resourceType":"Bundle","type":"batch","entry":[],"entry":[{"a":1}]}',
        b'{"resourceType":"Bundle","type":"batch"}',
        b'{"resourceType":"Bundle","link":[{"entry":[]}],"type":"batch"}',
    ],
)
def test_an_entry_array_the_scan_cannot_be_sure_of_is_left_to_whole_parsing(raw: bytes):
    assert split_bundle(raw) is None


@pytest.mark.parametrize(
    "raw",
    [
        b'{"resourceType":"Bundle","type":"batch","entry":[{"a":1} {"b":2}]}',
        b'{"resourceType":"Bundle","type":"batch","entry":[{"a":1},,{"b":2}]}',
        b'{"resourceType":"Bundle","type":"batch","entry":[{"a":1},]}',
        b'{"resourceType":"Bundle","type":"batch","entry":[5,{"a":1}]}',
        b'{"resourceType":"Bundle","type":"batch","entry":[{"a":1}] trailing',
    ],
)
def test_broken_json_around_the_entries_is_a_400(split_always: None, client: TestClient, raw):
    r = send(client, raw)
    assert r.status_code == 400
    assert r.json()["resourceType"] == "OperationOutcome"


def test_a_split_transaction_stores_what_a_whole_one_does(split_always: None, client: TestClient):
    raw = (SYNTHEA / "Lavern240_Treutel973_7353e17f-0cd5-5b0a-c736-92b9ca5f8366.json").read_bytes()
    for name in ("hospitalInformation.json", "practitionerInformation.json"):
        assert send(client, (SYNTHEA / name).read_bytes()).status_code == 200
    r = send(client, raw)
    assert r.status_code == 200, r.text[:500]
    entries = orjson.loads(raw)["entry"]
    assert len(r.json()["entry"]) == len(entries)
    encounters = sum(1 for e in entries if e["resource"]["resourceType"] == "Encounter")
    assert count(client, "Encounter") == encounters
    # References were rewritten exactly as on the whole path: every encounter's subject
    # is the stored patient.
    (patient_id,) = [p["resource"]["id"] for p in client.get("/fhir/Patient").json()["entry"]]
    found = client.get(f"/fhir/Encounter?subject=Patient/{patient_id}&_summary=count")
    assert found.json()["total"] == encounters


def test_a_split_transaction_with_an_invalid_entry_stores_nothing(
    split_always: None, client: TestClient
):
    bundle = transaction(
        post(patient("1"), "urn:uuid:a"),
        post(patient("2", birthDate="someday")),
        post(encounter("urn:uuid:a")),
    )
    r = send(client, orjson.dumps(bundle))
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["Bundle.entry[1].resource.birthDate"]
    assert count(client, "Patient") == 0


def test_a_split_batch_answers_each_entry_on_its_own(split_always: None, client: TestClient):
    bundle = transaction(
        post(patient("1")),
        {"request": {"method": "POST", "url": "Nothing"}, "resource": {"resourceType": "X"}},
        post(patient("3")),
        kind="batch",
    )
    r = send(client, orjson.dumps(bundle))
    assert r.status_code == 200
    statuses = [e["response"]["status"] for e in r.json()["entry"]]
    assert statuses[0].startswith("201") and statuses[2].startswith("201")
    assert statuses[1].startswith("400")


def test_split_bodies_keep_the_depth_and_size_limits(
    split_always: None, client: TestClient, monkeypatch: pytest.MonkeyPatch
):
    deep: Any = "x"
    for _ in range(MAX_DEPTH):
        deep = [deep]
    too_deep = transaction(post(patient("1", extension=[{"url": "urn:x", "valueString": deep}])))
    r = send(client, orjson.dumps(too_deep))
    assert r.status_code == 400 and str(MAX_DEPTH) in r.text
    names = [{"family": f"F{i}"} for i in range(body_module.MAX_VALUES_PER_RESOURCE // 2)]
    r = send(client, orjson.dumps(transaction(post(patient("2", name=names)))))
    assert r.status_code == 413
    monkeypatch.setattr(split_module, "MAX_ENTRIES", 3)
    r = send(client, orjson.dumps(transaction(*(post(patient(str(i))) for i in range(4)))))
    assert r.status_code == 413 and "entries" in r.text
    assert count(client, "Patient") == 0


def test_a_bundle_envelope_with_many_entries_is_not_one_huge_resource():
    """Before: a 12,000-entry bundle failed the per-resource cap on its own envelope."""
    entry = {"fullUrl": "urn:uuid:x", "request": {"method": "POST", "url": "Basic"}}
    many = {"resourceType": "Bundle", "type": "transaction", "entry": [entry] * 12_000}
    body_module.check_json_shape(many)


def test_a_split_transaction_that_loses_a_race_at_commit_is_a_409_and_stores_nothing(
    split_always: None, client: TestClient, monkeypatch: pytest.MonkeyPatch
):
    """Its entries' bytes became its writes, so it is not planned again: the client
    sends it again (a whole-parsed transaction is re-planned instead)."""
    repo = client.app.state.repository
    original = repo.commit_planned

    async def racing_commit(ctx: Any, writes: Any) -> None:
        await repo.create(ctx, "Patient", patient("other", id="p9"))
        raise VersionConflict("Patient", "p9", 0, 1)

    monkeypatch.setattr(repo, "commit_planned", racing_commit)
    bundle = transaction(put(patient("9", id="p9"), "Patient/p9"), post(patient("10")))
    r = send(client, orjson.dumps(bundle))
    assert r.status_code == 409
    assert "send it again" in r.json()["issue"][0]["diagnostics"]
    monkeypatch.setattr(repo, "commit_planned", original)
    assert count(client, "Patient") == 1  # only the racing writer's
