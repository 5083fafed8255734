"""999 and 277CA acknowledgements through ``$import-x12``, on both backends: accepted
claims are recorded, a rejected one goes back to the coders' queue as a review Task
with the reason, and re-importing changes nothing."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from server.x12.ledger import SENT
from server.x12.loops_837 import patient_control_number_of
from tests.x12.conftest import EDI, case_named, load_claim, search
from tests.x12.x12_files import ack_277ca, ack_999

TASK_CODE = "https://billable.dev/fhir/CodeSystem/task-code"


def made_837(client: TestClient, name: str) -> tuple[dict[str, Any], int]:
    claim = load_claim(client, case_named(name))
    r = client.get(f"/fhir/Claim/{claim['id']}/$x12")
    assert r.status_code == 200, r.text
    return claim, int(r.headers["x-x12-control-number"])


def post(client: TestClient, text: str) -> dict[str, Any]:
    r = client.post("/fhir/$import-x12", content=text.encode(), headers=EDI)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def review_tasks(client: TestClient, claim_id: str) -> list[dict[str, Any]]:
    return [
        t
        for t in search(client, f"Task?focus=Claim/{claim_id}")
        if t["code"]["coding"][0] == {"system": TASK_CODE, "code": "review-claim"}
    ]


def acks_of(client: TestClient, claim_id: str) -> list[dict[str, Any]]:
    assert client.portal is not None
    repo = client.app.state.repository  # type: ignore[attr-defined]
    found = client.portal.call(repo.records.get, SENT, claim_id)
    return list(found[1]["acks"]) if found else []


def test_a_999_rejection_sends_the_claim_back_to_the_coders_queue(client: TestClient):
    claim, control = made_837(client, "est_20min_99213")
    text = ack_999(control, [("0001", "R")])
    outcome = post(client, text)
    assert any("Rejected, back to the coders' queue" in i["diagnostics"] for i in outcome["issue"])
    [task] = review_tasks(client, claim["id"])
    assert task["status"] == "requested" and task["intent"] == "order"
    assert "999 IK5 R" in task["description"] and "segment NM1 #17" in task["description"]
    assert task["for"] == claim["patient"]
    assert [a["accepted"] for a in acks_of(client, claim["id"])] == [False]
    post(client, text)  # re-import: no second Task, no second ledger entry
    assert len(review_tasks(client, claim["id"])) == 1
    assert len(acks_of(client, claim["id"])) == 1


def test_a_999_acceptance_is_recorded_without_a_task(client: TestClient):
    claim, control = made_837(client, "est_20min_99213")
    post(client, ack_999(control, [("0001", "A")]))
    assert review_tasks(client, claim["id"]) == []
    [ack] = acks_of(client, claim["id"])
    assert ack["kind"] == "999" and ack["accepted"] is True


def test_a_277ca_rejection_names_the_payers_reason_on_the_task(client: TestClient):
    rejected, _ = made_837(client, "est_20min_99213")
    accepted, _ = made_837(client, "est_30min_99214")
    text = ack_277ca(
        [
            (patient_control_number_of(rejected["id"]), "A7:21", "SUBSCRIBER ID INVALID"),
            (patient_control_number_of(accepted["id"]), "A2:20", ""),
        ]
    )
    outcome = post(client, text)
    assert "1 accepted, 1 rejected" in outcome["issue"][0]["diagnostics"]
    [task] = review_tasks(client, rejected["id"])
    assert "277CA STC A7:21 SUBSCRIBER ID INVALID" in task["description"]
    assert review_tasks(client, accepted["id"]) == []
    assert acks_of(client, accepted["id"])[0]["accepted"] is True


def test_an_acknowledgement_for_an_unknown_claim_is_reported(client: TestClient):
    outcome = post(client, ack_277ca([("NEVERSENT", "A3:21", "UNKNOWN")]))
    assert any(
        i["severity"] == "warning" and "NEVERSENT" in i["diagnostics"] for i in outcome["issue"]
    )
