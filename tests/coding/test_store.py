"""Claim generation through the API and the store, on both backends.

The whole gold set is loaded into one store per backend and coded with
``$generate-claim``; then the lifecycle: one Claim per Encounter, versions, replacement
after adjudication, the coder's Task queue, Provenance, and the automatic trigger.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from tests.coding.cases import CASES as BASE_CASES
from tests.coding.cases import HTN, Case, cond
from tests.coding.cases_cms import CASES_CMS
from tests.coding.cases_coder import CODER_CASES
from tests.coding.gold import mismatches, resources, slug

FHIR_JSON = {"Content-Type": "application/fhir+json"}
CASES = BASE_CASES + CASES_CMS + CODER_CASES
# FerretDB (the MongoDB test server) scans without indexes, so a store holding all 189
# cases makes each generation's searches slower as it grows: the Mongo leg runs every
# third case (all three sets, every payer kind), the SQLite leg all of them. The engine's
# answers do not depend on the backend; the in-process gold run covers every case.
MONGO_CASES = CASES[::3]
IDENT = "https://billable.dev/fhir/claim-for-encounter"


@pytest.fixture(params=["sqlite", "mongo"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "mongo":
        return Settings(store_url=request.getfixturevalue("mongo_db_uri"))
    return Settings(store_url=f"sqlite:///{tmp_path / 'billable.db'}")


@pytest.fixture
def manual(settings: Settings) -> Iterator[TestClient]:
    """--coding manual: claims only on $generate-claim."""
    with TestClient(create_app(settings), base_url="http://testserver") as c:
        yield c


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """--coding auto."""
    with TestClient(
        create_app(replace(settings, coding="auto")), base_url="http://testserver"
    ) as c:
        yield c


def put(client: TestClient, resource: dict[str, Any]) -> Any:
    r = client.put(
        f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers=FHIR_JSON
    )
    assert r.status_code in (200, 201), r.text
    return r.json()


def condition(cid: str, code: str, encounter: str) -> dict[str, Any]:
    c = cond(cid, code)
    c.pop("_linked")
    c.update(subject={"reference": "Patient/life-p"}, encounter={"reference": encounter})
    return c


def drain(client: TestClient) -> None:
    assert client.portal is not None
    client.portal.call(client.app.state.coding.drain)  # type: ignore[attr-defined]


def load(client: TestClient, case: Case, *, finished: bool = True) -> str:
    r = resources(case)
    for res in [r["patient"], *r["conditions"], *r["procedures"], *r["coverages"]]:
        put(client, res)
    if r["prior"]:
        put(client, {**r["prior"], "status": "in-progress"})  # no claim for the prior one
        put(client, r["prior"])
    for res in r["extras"]:
        put(client, res)
    enc = r["encounter"]
    put(client, enc if finished else {**enc, "status": "in-progress"})
    return str(enc["id"])


def generate(client: TestClient, encounter_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    r = client.post(f"/fhir/Encounter/{encounter_id}/$generate-claim", headers=FHIR_JSON)
    assert r.status_code == 200, r.text
    params = {p["name"]: p["resource"] for p in r.json()["parameter"]}
    return params["claim"], params["outcome"]


def search(client: TestClient, query: str) -> list[dict[str, Any]]:
    r = client.get(f"/fhir/{query}")
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match"]


def test_gold_set_through_the_api(manual: TestClient, settings: Settings):
    client = manual
    cases = MONGO_CASES if settings.store_url.startswith("mongodb") else CASES
    for case in cases:
        load(client, case, finished=False)
    problems = []
    for case in cases:
        eid = f"{slug(case)}-e"
        claim, outcome = generate(client, eid)
        problems += mismatches(case, claim, outcome)
        # A claim without any service line has no item.encounter: found by identifier.
        query = f"encounter=Encounter/{eid}" if case.lines else f"identifier={IDENT}|{eid}"
        found = search(client, f"Claim?{query}")
        if [c["id"] for c in found] != [claim["id"]]:
            problems.append(f"{case.name}: Claim?encounter found {len(found)} claims")
        tasks = search(client, f"Task?focus=Claim/{claim['id']}")
        if case.status == "draft":
            if [t["status"] for t in tasks] != ["requested"]:
                problems.append(f"{case.name}: draft claim without a requested Task: {tasks}")
        elif tasks:
            problems.append(f"{case.name}: a clean claim has a Task")
    assert problems == [], "\n".join(problems)
    # The coders' work queue is an ordinary search.
    queue = search(client, "Task?status=requested&_count=100")
    assert len(queue) == sum(1 for c in cases if c.status == "draft")


def test_auto_trigger_and_lifecycle(client: TestClient):
    case = Case("life", conditions=[HTN], dx=["I10"], lines=[("99213", (), 1, (1,))])
    eid = load(client, case)
    drain(client)
    claims = search(client, f"Claim?encounter=Encounter/{eid}")
    assert len(claims) == 1 and claims[0]["status"] == "active"
    first = claims[0]
    assert first["meta"]["versionId"] == "1"
    # Provenance: the claim version, the exact source versions, engine and tables.
    provs = search(client, f"Provenance?target=Claim/{first['id']}")
    assert len(provs) == 1
    whats = [e["what"] for e in provs[0]["entity"]]
    refs = {w["reference"].rsplit("/_history", 1)[0] for w in whats if "reference" in w}
    assert {f"Encounter/{eid}", "Patient/life-p", "Condition/life-htn"} <= refs
    assert any(
        w.get("identifier", {}).get("system") == "http://hl7.org/fhir/sid/icd-10-cm" for w in whats
    )
    assert "coding engine" in provs[0]["agent"][0]["who"]["display"]
    # Regenerating without a change writes nothing.
    claim, _ = generate(client, eid)
    assert claim["meta"]["versionId"] == "1"
    # A header code makes it draft: same Claim, new version, a Task in the queue.
    put(client, condition("life-htn", "E11", f"Encounter/{eid}"))
    claim, outcome = generate(client, eid)
    assert claim["id"] == first["id"] and claim["meta"]["versionId"] == "2"
    assert claim["status"] == "draft"
    # (the prior visit, finished with no diagnosis, has a draft claim and a Task of its own)
    tasks = search(client, f"Task?status=requested&focus=Claim/{first['id']}")
    assert [t["focus"]["reference"] for t in tasks] == [f"Claim/{first['id']}"]
    contained = tasks[0]["contained"][0]
    assert contained["resourceType"] == "OperationOutcome"
    assert any(i["severity"] == "error" for i in contained["issue"])
    # Fixed: clean again and the Task is completed.
    put(client, condition("life-htn", "I10", f"Encounter/{eid}"))
    put(client, {**resources(case)["encounter"], "status": "finished"})  # auto trigger
    drain(client)
    claims = search(client, f"Claim?encounter=Encounter/{eid}")
    assert len(claims) == 1 and claims[0]["status"] == "active"
    assert claims[0]["meta"]["versionId"] == "3"
    assert search(client, f"Task?status=requested&focus=Claim/{first['id']}") == []
    assert len(search(client, f"Task?status=completed&focus=Claim/{first['id']}")) == 1
    # Adjudicated: a change now produces a replacement Claim pointing at the prior one.
    r = client.post(
        "/fhir/ClaimResponse",
        json={
            "resourceType": "ClaimResponse",
            "status": "active",
            "type": claims[0]["type"],
            "use": "claim",
            "patient": claims[0]["patient"],
            "created": "2026-03-10",
            "insurer": {"display": "Payer"},
            "request": {"reference": f"Claim/{first['id']}"},
            "outcome": "complete",
        },
        headers=FHIR_JSON,
    )
    assert r.status_code == 201, r.text
    put(client, condition("life-hld", "E78.5", f"Encounter/{eid}"))
    claim, _ = generate(client, eid)
    assert claim["id"] != first["id"]
    assert claim["related"][0]["claim"]["reference"] == f"Claim/{first['id']}"
    assert claim["related"][0]["relationship"]["coding"][0]["code"] == "prior"
    assert len(search(client, f"Claim?encounter=Encounter/{eid}")) == 2


def test_auto_trigger_from_a_transaction_and_never_failing_the_write(client: TestClient):
    case = Case("tx", conditions=[HTN])
    r = resources(case)
    entries = [
        {"resource": res, "request": {"method": "PUT", "url": f"{res['resourceType']}/{res['id']}"}}
        for res in [r["patient"], *r["conditions"], r["encounter"]]
    ]
    resp = client.post(
        "/fhir",
        json={"resourceType": "Bundle", "type": "transaction", "entry": entries},
        headers=FHIR_JSON,
    )
    assert resp.status_code == 200, resp.text
    drain(client)
    assert len(search(client, "Claim?encounter=Encounter/tx-e")) == 1
    # An Encounter whose claim cannot be built (no patient) is still stored.
    bad = {**r["encounter"], "id": "tx-bad", "subject": {"reference": "Patient/missing"}}
    put(client, bad)
    drain(client)
    claims = search(client, "Claim?encounter=Encounter/tx-bad")
    assert len(claims) == 1 and claims[0]["status"] == "draft"


@pytest.fixture
def sqlite_auto(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(store_url=f"sqlite:///{tmp_path / 'b.db'}", coding="auto")
    with TestClient(create_app(settings), base_url="http://testserver") as c:
        yield c


def test_a_failing_engine_never_fails_the_write(
    sqlite_auto: TestClient, monkeypatch: pytest.MonkeyPatch
):
    import mappings.coding.service as service_module

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("engine bug")

    monkeypatch.setattr(service_module, "code_encounter", broken)
    r = resources(Case("boom", conditions=[HTN]))
    put(sqlite_auto, r["patient"])
    put(sqlite_auto, r["encounter"])  # 201 although coding fails
    drain(sqlite_auto)
    failures = sqlite_auto.app.state.coding.failures  # type: ignore[attr-defined]
    assert [f[0] for f in failures] == ["boom-e"]
    assert "engine bug" in failures[0][1]
    tasks = search(sqlite_auto, "Task?focus=Encounter/boom-e&status=requested")
    assert "engine bug" in tasks[0]["description"]


def test_capability_statement_lists_generate_claim(sqlite_auto: TestClient):
    statement = sqlite_auto.get("/fhir/metadata").json()
    encounter = next(e for e in statement["rest"][0]["resource"] if e["type"] == "Encounter")
    assert "generate-claim" in [op["name"] for op in encounter.get("operation", [])]
