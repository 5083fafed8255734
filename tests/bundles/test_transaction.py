"""Transactions: R4 processing rules, reference rewriting, conditionals, atomicity."""

from __future__ import annotations

import base64

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.bundles.conftest import (
    FHIR_JSON,
    MRN,
    claim,
    condition,
    count,
    delete,
    encounter,
    get,
    patient,
    post,
    post_bundle,
    put,
    read,
    transaction,
)

P, E, C = (
    "urn:uuid:0d4d8e5a-0000-4000-8000-000000000001",
    "urn:uuid:0d4d8e5a-0000-4000-8000-000000000002",
    "urn:oid:1.2.840.10008.99.1",
)


def test_transaction_rewrites_references_in_nested_places(client: TestClient):
    narrative = {
        "status": "generated",
        "div": f'<div xmlns="http://www.w3.org/1999/xhtml">See <a href="{P}">the patient</a>'
        f' <img src="{E}"/></div>',
    }
    pat = patient("1", text=narrative)
    # Identifier.value is data, not a link: it keeps the urn even though it is a fullUrl.
    pat["identifier"].append({"system": "urn:ietf:rfc:3986", "value": P})
    enc = encounter(P, diagnosis=[{"condition": {"reference": C}}])
    bundle = transaction(
        post(claim(P, E, C), "urn:uuid:0d4d8e5a-0000-4000-8000-000000000004"),
        post(pat, P),
        post(enc, E),
        post(condition(P, encounter={"reference": E}), C),
    )
    r = post_bundle(client, bundle)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "transaction-response"
    locations = [e["response"]["location"] for e in body["entry"]]
    assert [loc.split("/")[0] for loc in locations] == [
        "Claim",
        "Patient",
        "Encounter",
        "Condition",
    ]
    assert all(e["response"]["status"] == "201 Created" for e in body["entry"])
    ids = {loc.split("/")[0]: "/".join(loc.split("/")[:2]) for loc in locations}

    stored_claim = read(client, locations[0])
    assert stored_claim["patient"]["reference"] == ids["Patient"]
    assert stored_claim["item"][0]["encounter"][0]["reference"] == ids["Encounter"]
    assert stored_claim["diagnosis"][0]["diagnosisReference"]["reference"] == ids["Condition"]
    stored_encounter = read(client, locations[2])
    assert stored_encounter["subject"]["reference"] == ids["Patient"]
    assert stored_encounter["diagnosis"][0]["condition"]["reference"] == ids["Condition"]
    stored_condition = read(client, locations[3])
    assert stored_condition["encounter"]["reference"] == ids["Encounter"]
    stored_patient = read(client, locations[1])
    div = stored_patient["text"]["div"]
    assert f'href="{ids["Patient"]}"' in div and f'src="{ids["Encounter"]}"' in div
    assert stored_patient["identifier"][1]["value"] == P
    # The response carries each resource as stored, with etag and lastModified.
    first = body["entry"][0]
    assert first["resource"]["patient"]["reference"] == ids["Patient"]
    assert first["response"]["etag"] == 'W/"1"'
    assert first["response"]["lastModified"] == first["resource"]["meta"]["lastUpdated"]


def test_resource_relative_ids_and_versioned_references_are_rewritten(client: TestClient):
    base = "http://ehr.example.org/fhir"
    bundle = transaction(
        post(patient("2"), f"{base}/Patient/ehr-17"),
        post(
            encounter(
                "Patient/ehr-17",
                episodeOfCare=[{"reference": f"{base}/Patient/ehr-17/_history/5"}],
            ),
            f"{base}/Encounter/ehr-3",
        ),
    )
    # (episodeOfCare is the wrong type to point at a Patient, but the rewrite must not care.)
    r = post_bundle(client, bundle)
    assert r.status_code == 200, r.text
    patient_loc, encounter_loc = (e["response"]["location"] for e in r.json()["entry"])
    new_patient = "/".join(patient_loc.split("/")[:2])
    assert not new_patient.endswith("ehr-17")
    stored = read(client, encounter_loc)
    assert stored["subject"]["reference"] == new_patient
    assert stored["episodeOfCare"][0]["reference"] == f"{new_patient}/_history/1"


def test_conditional_create_hit_points_references_at_the_existing_resource(client: TestClient):
    first = post_bundle(client, transaction(post(patient("42"), P)))
    existing = first.json()["entry"][0]["response"]["location"].split("/")[1]
    bundle = transaction(
        post(patient("42", gender="male"), P, ifNoneExist=f"identifier={MRN}|42"),
        post(encounter(P), E),
    )
    r = post_bundle(client, bundle)
    assert r.status_code == 200, r.text
    entries = r.json()["entry"]
    assert entries[0]["response"]["status"] == "200 OK"
    assert entries[0]["response"]["location"] == f"Patient/{existing}/_history/1"
    assert entries[0]["resource"]["gender"] == "female"  # the existing one, untouched
    assert read(client, entries[1]["response"]["location"])["subject"]["reference"] == (
        f"Patient/{existing}"
    )
    assert count(client, "Patient") == 1


def test_conditional_create_miss_creates(client: TestClient):
    bundle = transaction(
        post(patient("43"), P, ifNoneExist=f"identifier={MRN}|43"), post(encounter(P), E)
    )
    r = post_bundle(client, bundle)
    assert r.status_code == 200, r.text
    entries = r.json()["entry"]
    assert entries[0]["response"]["status"] == "201 Created"
    new_id = entries[0]["response"]["location"].split("/")[1]
    assert read(client, entries[1]["response"]["location"])["subject"]["reference"] == (
        f"Patient/{new_id}"
    )


def test_conditional_reference_resolved_to_the_single_match(client: TestClient):
    created = post_bundle(client, transaction(post(patient("7"), P)))
    pid = created.json()["entry"][0]["response"]["location"].split("/")[1]
    r = post_bundle(client, transaction(post(encounter(f"Patient?identifier={MRN}|7"), E)))
    assert r.status_code == 200, r.text
    stored = read(client, r.json()["entry"][0]["response"]["location"])
    assert stored["subject"]["reference"] == f"Patient/{pid}"


def test_conditional_reference_may_match_a_resource_created_in_the_same_bundle(
    client: TestClient,
):
    bundle = transaction(
        post(encounter(f"Patient?identifier={MRN}|8"), E),
        post(patient("8"), P, ifNoneExist=f"identifier={MRN}|8"),
    )
    r = post_bundle(client, bundle)
    assert r.status_code == 200, r.text
    enc_loc, pat_loc = (e["response"]["location"] for e in r.json()["entry"])
    assert read(client, enc_loc)["subject"]["reference"] == "/".join(pat_loc.split("/")[:2])


def test_conditional_reference_without_match_fails_the_transaction(client: TestClient):
    r = post_bundle(
        client,
        transaction(post(patient("9"), P), post(encounter(f"Patient?identifier={MRN}|nobody"), E)),
    )
    assert r.status_code == 400
    issue = r.json()["issue"][0]
    assert (
        "Bundle.entry[1]" in issue["diagnostics"] and "matches no Patient" in issue["diagnostics"]
    )
    assert count(client) == 0


def test_conditional_reference_with_several_matches_is_412(client: TestClient):
    post_bundle(client, transaction(post(patient("10"), P), post(patient("10"), E)))
    r = post_bundle(client, transaction(post(encounter(f"Patient?identifier={MRN}|10"))))
    assert r.status_code == 412
    assert "more than one" in r.json()["issue"][0]["diagnostics"]
    assert count(client, "Encounter") == 0


def test_transaction_rolls_back_when_last_entry_fails(client: TestClient):
    bad_claim = claim(P, E, C)
    bad_claim["item"][0]["sequence"] = "first"
    bundle = transaction(
        post(patient("11"), P),
        post(encounter(P), E),
        post(condition(P), C),
        post(bad_claim),
    )
    r = post_bundle(client, bundle)
    assert r.status_code == 400
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    expressions = [e for issue in outcome["issue"] for e in issue.get("expression", [])]
    assert "Bundle.entry[3].resource.item[0].sequence" in expressions
    assert "Bundle.entry[3]" in outcome["issue"][0]["diagnostics"]
    assert count(client) == 0


def test_transaction_rolls_back_when_a_late_entry_fails_a_precondition(client: TestClient):
    pid = post_bundle(client, transaction(post(patient("12"), P))).json()["entry"][0]
    pid = pid["response"]["location"].split("/")[1]
    stale = patient("12", id=pid, gender="other")
    bundle = transaction(
        post(encounter(P), E),
        put(stale, f"Patient/{pid}", ifMatch='W/"7"'),
    )
    r = post_bundle(client, bundle)
    assert r.status_code == 412
    assert "Bundle.entry[1]" in r.json()["issue"][0]["diagnostics"]
    assert count(client, "Encounter") == 0
    assert read(client, f"Patient/{pid}")["gender"] == "female"


def test_two_entries_for_the_same_resource_are_refused(client: TestClient):
    bundle = transaction(
        put(patient("13", id="same"), "Patient/same"),
        put(patient("13", id="same", gender="male"), "Patient/same"),
    )
    r = post_bundle(client, bundle)
    assert r.status_code == 400
    assert "only once" in r.json()["issue"][0]["diagnostics"]
    assert count(client) == 0


def test_duplicate_full_urls_are_refused(client: TestClient):
    r = post_bundle(client, transaction(post(patient("14"), P), post(patient("15"), P)))
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["Bundle.entry[1].fullUrl"]


def test_entries_run_in_r4_order_and_answer_in_request_order(client: TestClient):
    post_bundle(client, transaction(put(patient("16", id="old"), "Patient/old")))
    bundle = transaction(
        get("Patient/new"),  # reads run last: they see this transaction's writes
        put(patient("17", id="new"), "Patient/new"),
        delete("Patient/old"),
        post(patient("18"), P),
    )
    r = post_bundle(client, bundle)
    assert r.status_code == 200, r.text
    entries = r.json()["entry"]
    assert [e["response"]["status"] for e in entries] == [
        "200 OK",
        "201 Created",
        "204 No Content",
        "201 Created",
    ]
    assert entries[0]["resource"]["id"] == "new"
    assert client.get("/fhir/Patient/old").status_code == 410
    # Deletes run first: their version comes before the creates'.
    assert entries[2]["response"]["lastModified"] < entries[1]["response"]["lastModified"]


def test_conditional_update_and_delete_inside_a_transaction(client: TestClient):
    post_bundle(client, transaction(post(patient("19")), post(patient("20"))))
    bundle = transaction(
        put(patient("19", gender="male"), f"Patient?identifier={MRN}|19"),
        delete(f"Patient?identifier={MRN}|20"),
        delete(f"Patient?identifier={MRN}|nobody"),
    )
    r = post_bundle(client, bundle)
    assert r.status_code == 200, r.text
    entries = r.json()["entry"]
    assert entries[0]["response"]["status"] == "200 OK"
    assert entries[0]["response"]["etag"] == 'W/"2"'
    assert entries[0]["resource"]["gender"] == "male"
    assert [e["response"]["status"] for e in entries[1:]] == ["204 No Content"] * 2


def test_patch_in_a_transaction(client: TestClient):
    post_bundle(client, transaction(put(patient("21", id="pp"), "Patient/pp")))
    ops = [{"op": "replace", "path": "/gender", "value": "unknown"}]
    binary = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(orjson.dumps(ops)).decode(),
    }
    r = post_bundle(
        client,
        transaction({"resource": binary, "request": {"method": "PATCH", "url": "Patient/pp"}}),
    )
    assert r.status_code == 200, r.text
    assert read(client, "Patient/pp")["gender"] == "unknown"


def test_unchanged_update_writes_no_new_version(client: TestClient):
    bundle = transaction(put(patient("22", id="same-again"), "Patient/same-again"))
    assert post_bundle(client, bundle).json()["entry"][0]["response"]["status"] == "201 Created"
    again = post_bundle(client, bundle).json()["entry"][0]["response"]
    assert again["status"] == "200 OK" and again["etag"] == 'W/"1"'
    assert count(client, "Patient") == 1


def test_prefer_return_minimal_leaves_the_resources_out(client: TestClient):
    r = post_bundle(client, transaction(post(patient("23"), P)), Prefer="return=minimal")
    entry = r.json()["entry"][0]
    assert "resource" not in entry
    assert entry["response"]["location"].startswith("Patient/")


def test_other_bundle_types_are_refused_with_what_is_accepted(client: TestClient):
    r = post_bundle(client, transaction(post(patient("24")), kind="collection"))
    assert r.status_code == 400
    diagnostics = r.json()["issue"][0]["diagnostics"]
    assert "'transaction' or 'batch'" in diagnostics
    assert client.post("/fhir", json=patient("25"), headers=FHIR_JSON).status_code == 400
    assert count(client) == 0


def test_malformed_entries_are_located(client: TestClient):
    bundle = transaction(post(patient("26")), {"request": {"method": "POST", "url": "Patient"}})
    r = post_bundle(client, bundle)
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["Bundle.entry[1].resource"]


def test_trailing_slash_base_also_takes_bundles(client: TestClient):
    r = client.post("/fhir/", json=transaction(post(patient("27"))), headers=FHIR_JSON)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("workers", ["0", "2"])
def test_big_transaction_reports_the_first_invalid_entry_in_process_or_on_workers(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, workers: str
):
    # More entries than server.bundles.parallel.PARALLEL_MIN: with BILLABLE_BUNDLE_WORKERS=2
    # validated by worker processes, by default in the server process.
    monkeypatch.setenv("BILLABLE_BUNDLE_WORKERS", workers)
    entries = [post(patient(str(1000 + i))) for i in range(80)]
    entries[65] = post(patient("bad", birthDate="1980-13-45"))
    entries[70] = post(patient("bad too", birthDate="someday"))
    # A planning error after the invalid entries: validation still decides the answer.
    entries.append(post(encounter(f"Patient?identifier={MRN}|nobody")))
    r = post_bundle(client, transaction(*entries))
    assert r.status_code == 400
    issue = r.json()["issue"][0]
    assert issue["expression"] == ["Bundle.entry[65].resource.birthDate"]
    assert count(client) == 0


def test_transaction_rolls_back_when_the_last_write_conflicts_at_commit(
    client: TestClient, monkeypatch
):
    """The store's all-or-nothing commit: the first writes of the batch are undone."""
    post_bundle(client, transaction(put(patient("31", id="target"), "Patient/target")))
    repo = client.app.state.repository
    original = repo.commit_planned

    async def racing_commit(ctx, writes):
        # Another writer changes the last entry's resource between planning and commit.
        await repo.update(ctx, "Patient", "target", patient("31", id="target", gender="male"))
        await original(ctx, writes)

    monkeypatch.setattr(repo, "commit_planned", racing_commit)
    bundle = transaction(
        post(patient("32"), P),
        post(encounter(P), E),
        put(patient("31", id="target", gender="other"), "Patient/target", ifMatch='W/"1"'),
    )
    r = post_bundle(client, bundle)
    monkeypatch.undo()
    assert r.status_code == 412, r.text
    assert "Bundle.entry[2]" in r.json()["issue"][0]["diagnostics"]
    assert count(client, "Encounter") == 0
    assert count(client, "Patient") == 2  # Patient/target v1 and the racing v2, nothing else
    assert read(client, "Patient/target")["gender"] == "male"


def test_conditionals_in_a_bundle_take_any_search_parameter(client: TestClient):
    post_bundle(client, transaction(post(patient("50", birthDate="1950-05-05"))))
    bundle = transaction(
        post(patient("51", birthDate="1950-05-05"), P, ifNoneExist="birthdate=1950-05-05"),
        post(encounter("Patient?birthdate=1950-05-05&family=Bundle"), E),
        post(
            condition(P, encounter={"reference": "Encounter?subject:missing=false&status=finished"})
        ),
    )
    r = post_bundle(client, bundle)
    assert r.status_code == 200, r.text
    entries = r.json()["entry"]
    existing = "/".join(entries[0]["response"]["location"].split("/")[:2])
    assert entries[0]["response"]["status"] == "200 OK"
    assert read(client, entries[1]["response"]["location"])["subject"]["reference"] == existing
    # The Encounter created in this transaction is the one match of the second criteria.
    enc = "/".join(entries[1]["response"]["location"].split("/")[:2])
    assert read(client, entries[2]["response"]["location"])["encounter"]["reference"] == enc
    unknown = post_bundle(client, transaction(post(encounter("Patient?shoe-size=42"))))
    assert unknown.status_code == 400


def test_bundles_have_their_own_body_limit_and_the_413_names_the_setting(tmp_path):
    from server.app import create_app
    from server.config import Settings

    settings = Settings(
        store_url=f"sqlite:///{tmp_path / 'small.db'}", max_body_bytes=500, max_bundle_bytes=2000
    )
    with TestClient(create_app(settings), base_url="http://testserver") as small:
        big = transaction(*(post(patient(str(i))) for i in range(20)))
        r = post_bundle(small, big)
        assert r.status_code == 413
        issue = r.json()["issue"][0]
        assert issue["code"] == "too-costly"
        assert "BILLABLE_MAX_BUNDLE_MB" in issue["diagnostics"]
        # Bigger than the limit of other requests, within the bundle limit.
        one = transaction(post(patient("1", text={"status": "generated", "div": DIV})))
        assert 500 < len(orjson.dumps(one)) < 2000
        assert post_bundle(small, one).status_code == 200
        single = small.post("/fhir/Patient", json=one["entry"][0]["resource"], headers=FHIR_JSON)
        assert single.status_code == 413
        assert "BILLABLE_MAX_BODY_MB" in single.json()["issue"][0]["diagnostics"]


DIV = (
    '<div xmlns="http://www.w3.org/1999/xhtml">'
    + "A patient with a long narrative. " * 15
    + "</div>"
)
