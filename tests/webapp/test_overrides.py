"""A coder's decisions stored as data and reapplied by the engine, through the API.

The decisions are ``Basic`` resources written like any client's resource; the claim is
regenerated with ``$generate-claim``. Cases come from the gold set (tests/coding/cases.py):
a header diagnosis code (``E11``, not billable) and a new-patient visit under 15 minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mappings.coding.model import EDIT_SYSTEM
from mappings.coding.overrides import check_decision, override_resource
from mappings.coding.worklist import PAYER_GROUP
from server.app import create_app
from server.config import Settings
from tests.coding.cases import CASES, Case
from tests.coding.gold import slug
from tests.coding.test_store import FHIR_JSON, generate, load, put, search

CODER = {
    "display": "coder1",
    "identifier": {"system": "https://billable.dev/fhir/user", "value": "coder1"},
}


def case(name: str) -> Case:
    return next(c for c in CASES if c.name == name)


@pytest.fixture(params=["sqlite", "mongo"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    if request.param == "mongo":
        settings = Settings(store_url=request.getfixturevalue("mongo_db_uri"))
    else:
        settings = Settings(store_url=f"sqlite:///{tmp_path / 'billable.db'}")
    with TestClient(create_app(settings), base_url="http://testserver") as c:
        yield c


def decide(
    client: TestClient,
    encounter_id: str,
    claim_id: str,
    action: str,
    target: str = "",
    value: str = "",
    reason: str = "documentation supports it",
    accepted: list[str] | None = None,
) -> dict[str, Any]:
    assert check_decision(action, target, value, reason) == []
    basic = override_resource(
        encounter_id=encounter_id,
        claim_id=claim_id,
        action=action,
        target=target,
        value=value,
        reason=reason,
        author=CODER,
        accepted=accepted,
    )
    r = client.post("/fhir/Basic", json=basic, headers=FHIR_JSON)
    assert r.status_code == 201, r.text
    return dict(r.json())


def review_task(client: TestClient, claim_id: str) -> dict[str, Any]:
    tasks = search(client, f"Task?focus=Claim/{claim_id}")
    assert len(tasks) == 1
    return tasks[0]


def edits(outcome: dict[str, Any], severity: str = "error") -> list[str]:
    return [
        i["details"]["coding"][0]["code"]
        for i in outcome["issue"]
        if i["severity"] == severity and "details" in i
    ]


def accepted_edits(outcome: dict[str, Any]) -> list[str]:
    return [
        f"{i['details']['coding'][0]['code']}: {i['diagnostics']}"
        for i in outcome["issue"]
        if i["severity"] == "error" and "details" in i
    ]


def test_a_replaced_diagnosis_holds_the_claim_until_released_then_it_goes_active(
    client: TestClient,
) -> None:
    eid = load(client, case("header_code_is_error"))
    claim, outcome = generate(client, eid)
    assert claim["status"] == "draft" and edits(outcome) == ["code-not-billable"]
    task = review_task(client, claim["id"])
    assert task["businessStatus"]["coding"] == [
        {"system": EDIT_SYSTEM, "code": "code-not-billable"}
    ]
    assert task["encounter"] == {"reference": f"Encounter/{eid}"}

    decide(client, eid, claim["id"], "dx-code", "E11", "E11.9", "A1c documented, no complication")
    claim, outcome = generate(client, eid)
    assert claim["diagnosis"][0]["diagnosisCodeableConcept"]["coding"][0]["code"] == "E11.9"
    assert edits(outcome) == ["coder-hold"], "unreleased decisions keep the claim a draft"
    assert claim["status"] == "draft"
    assert "coder-override" in edits(outcome, "information")

    decide(client, eid, claim["id"], "release", reason="reviewed", accepted=[])
    claim, outcome = generate(client, eid)
    assert claim["status"] == "active" and edits(outcome) == []
    assert review_task(client, claim["id"])["status"] == "completed"


def test_a_decision_that_no_longer_fits_returns_the_claim_to_the_queue_saying_why(
    client: TestClient,
) -> None:
    eid = load(client, case("header_code_is_error"))
    claim, _ = generate(client, eid)
    decide(client, eid, claim["id"], "dx-code", "E11", "E11.9")
    decide(client, eid, claim["id"], "release", reason="fixed")
    claim, _ = generate(client, eid)
    assert claim["status"] == "active"

    # The EHR amends the encounter: the condition is now hypertension, E11 is gone.
    slugged = slug(case("header_code_is_error"))
    condition = search(client, f"Condition?encounter=Encounter/{eid}")[0]
    condition["code"] = {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I10"}]}
    put(client, condition)
    assert slugged in eid
    claim, outcome = generate(client, eid)
    assert claim["status"] == "draft"
    assert edits(outcome) == ["override-stale"]
    task = review_task(client, claim["id"])
    assert task["status"] == "requested"
    assert "no longer fits" in task["description"] and "E11" in task["description"]


def test_a_release_accepts_only_the_edits_it_names(client: TestClient) -> None:
    eid = load(client, case("new_under_15_is_review"))
    claim, outcome = generate(client, eid)
    assert edits(outcome) == ["em-new-under-15"]
    decide(client, eid, claim["id"], "release", reason="wrong edit", accepted=["other: x"])
    claim, outcome = generate(client, eid)
    assert claim["status"] == "draft" and edits(outcome) == ["em-new-under-15"]

    decide(
        client,
        eid,
        claim["id"],
        "release",
        reason="time documented",
        accepted=accepted_edits(outcome),
    )
    claim, outcome = generate(client, eid)
    assert claim["status"] == "active"
    assert "em-new-under-15" in edits(outcome, "warning")
    accepted = next(i for i in outcome["issue"] if i["severity"] == "warning")
    assert accepted["diagnostics"].startswith("Accepted by coder coder1 (time documented)")


def test_line_decisions_are_validated_and_priced_like_the_engines_own_lines(
    client: TestClient,
) -> None:
    eid = load(client, case("new_under_15_is_review"))
    claim, _ = generate(client, eid)
    assert [i["productOrService"]["coding"][0]["code"] for i in claim["item"]] == ["99202"]
    price_99202 = claim["item"][0]["unitPrice"]["value"]
    decide(client, eid, claim["id"], "line-code", "99202", "99203", "history and exam support it")
    decide(client, eid, claim["id"], "units", "99203", "1")
    decide(client, eid, claim["id"], "modifier", "99203", "25")
    claim, outcome = generate(client, eid)
    item = claim["item"][0]
    assert item["productOrService"]["coding"][0]["code"] == "99203"
    assert [m["coding"][0]["code"] for m in item["modifier"]] == ["25"]
    assert item["unitPrice"]["value"] > price_99202, "the new code is priced from the fee schedule"
    # The visit-time edit is about the encounter, not the code: it stays for the release.
    assert edits(outcome) == ["em-new-under-15", "coder-hold"]

    decide(client, eid, claim["id"], "line-code", "99999", "99213")  # no such line
    claim, outcome = generate(client, eid)
    assert "override-stale" in edits(outcome)


def test_the_claims_provenance_names_the_decisions_it_applied(client: TestClient) -> None:
    eid = load(client, case("header_code_is_error"))
    claim, _ = generate(client, eid)
    decision = decide(client, eid, claim["id"], "dx-code", "E11", "E11.9")
    claim, _ = generate(client, eid)
    version = claim["meta"]["versionId"]
    versioned = f"Claim/{claim['id']}/_history/{version}"
    provenance = [
        p
        for p in search(client, f"Provenance?target=Claim/{claim['id']}")
        if {"reference": versioned} in p["target"]
    ]
    assert len(provenance) == 1
    sources = {
        e["what"].get("reference", "").rsplit("/_history/", 1)[0] for e in provenance[0]["entity"]
    }
    assert f"Basic/{decision['id']}" in sources


def test_review_tasks_are_searchable_by_edit_payer_and_date_of_service(client: TestClient) -> None:
    eid = load(client, case("header_code_is_error"))
    claim, _ = generate(client, eid)
    task = review_task(client, claim["id"])
    assert task["groupIdentifier"]["system"] == PAYER_GROUP
    found = search(client, f"Task?business-status={EDIT_SYSTEM}|code-not-billable")
    assert [t["id"] for t in found] == [task["id"]]
    assert search(client, f"Task?business-status={EDIT_SYSTEM}|ncci-review") == []
    payer = task["groupIdentifier"]["value"]
    assert [t["id"] for t in search(client, f"Task?group-identifier={PAYER_GROUP}|{payer}")] == [
        task["id"]
    ]
    assert [t["id"] for t in search(client, "Task?encounter.date=2026-03-02")] == [task["id"]]
    assert search(client, "Task?encounter.date=2025-03-02") == []


def test_a_decision_without_a_reason_cannot_be_recorded() -> None:
    assert "a reason is required" in check_decision("dx-code", "E11", "E11.9", " ")
    assert check_decision("units", "99213", "0", "x") == ["units are a whole number from 1 to 999"]
    assert check_decision("teleport", "", "", "x") == ["unknown action 'teleport'"]


def test_order_pointer_and_drop_decisions_renumber_the_claim_by_code(client: TestClient) -> None:
    eid = load(client, case("procedure_reason_pointer_first"))
    claim, _ = generate(client, eid)
    dx = [d["diagnosisCodeableConcept"]["coding"][0]["code"] for d in claim["diagnosis"]]
    assert dx == ["I10", "E78.5"]
    decide(client, eid, claim["id"], "dx-order", "E78.5", "1", "the visit was for the lipids")
    decide(client, eid, claim["id"], "pointer", "99213", "E78.5", "only the lipids were addressed")
    decide(client, eid, claim["id"], "drop-line", "93000", reason="ECG billed by the cardiologist")
    claim, outcome = generate(client, eid)
    dx = [d["diagnosisCodeableConcept"]["coding"][0]["code"] for d in claim["diagnosis"]]
    assert dx == ["E78.5", "I10"]
    assert [i["productOrService"]["coding"][0]["code"] for i in claim["item"]] == ["99213"]
    assert claim["item"][0]["diagnosisSequence"] == [1], "points to E78.5, now first"
    assert claim["total"]["value"] == claim["item"][0]["net"]["value"]
    assert edits(outcome) == ["coder-hold"]
    assert edits(outcome, "information").count("coder-override") == 3
