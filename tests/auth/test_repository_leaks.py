"""A patient-A token learns nothing of patient B through any door of the repository.

Each test is one leak of the attack table (issue 13), replayed over real HTTP (a uvicorn
server on loopback, real signed tokens) on SQLite and on MongoDB (FerretDB). Every
answer must be exactly the answer the request gets when B's data does not exist at all,
and must not contain a byte of B's data.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from server.app import create_app
from server.config import Settings
from tests.auth.conftest import claim_for, observation_for

FHIR_JSON = {"Content-Type": "application/fhir+json"}
SSN = "http://hl7.org/fhir/sid/us-ssn"
OBS_IDS = "urn:example:obs"
B_SSN = "999-22-2222"
B_SECRET = "secret-b-data"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    http: httpx.Client
    app: FastAPI
    base: str

    def token(self, scope: str, client_id: str = "test-app", **claims: Any) -> dict[str, str]:
        """A real access token signed by the server's own key, as the token endpoint
        would issue it."""
        issued = self.app.state.security.issuer.access_token(
            issuer=f"{self.base}/auth",
            audience=f"{self.base}/fhir",
            client_id=client_id,
            scope=scope,
            lifetime_s=300,
            **claims,
        )
        return {"Authorization": f"Bearer {issued.token}"}

    def put(self, headers: dict[str, str], resource: dict[str, Any]) -> httpx.Response:
        return self.http.put(
            f"/fhir/{resource['resourceType']}/{resource['id']}",
            json=resource,
            headers={**headers, **FHIR_JSON},
        )


@pytest.fixture
def served(registered: str) -> Iterator[Served]:
    """``billable serve`` in SMART mode on a loopback port (uvicorn in a thread)."""
    app = create_app(Settings(store_url=registered, auth="smart"))
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            assert http.get("/auth/jwks").status_code == 200  # makes the signing keys
            yield Served(http, app, base)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _patient(pid: str, ssn: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": SSN, "value": ssn}],
        "name": [{"family": f"Family-{pid}", "text": f"{B_SECRET if pid == 'p2' else pid}"}],
    }


def _observation(pid: str, rid: str, identifier: str) -> dict[str, Any]:
    return {
        **observation_for(pid, "laboratory"),
        "id": rid,
        "identifier": [{"system": OBS_IDS, "value": identifier}],
    }


@pytest.fixture
def world(served: Served) -> Served:
    """Patients p1 (A) and p2 (B), each with a Claim and an identified Observation."""
    admin = served.token("system/*.cruds", client_id="payer")
    for resource in (
        _patient("p1", "999-11-1111"),
        _patient("p2", B_SSN),
        {**claim_for("p1"), "id": "claim-p1"},
        {**claim_for("p2"), "id": "claim-p2"},
        _observation("p1", "obs-p1", "obs-a"),
        _observation("p2", "obs-p2", "obs-b"),
    ):
        r = served.put(admin, resource)
        assert r.status_code == 201, r.text
    return served


def _me(world: Served) -> dict[str, str]:
    return world.token("patient/*.cruds", patient="p1")


def _admin(world: Served) -> dict[str, str]:
    return world.token("system/*.cruds system/AuditEvent.rs", client_id="payer")


def _no_b(response: httpx.Response, *sent: str) -> None:
    """No byte of B's data: B's resources, ids or identifiers (criteria the request sent
    itself may be echoed in a diagnostic; they are what A already knows)."""
    text = response.text
    for echoed in (f"{SSN}|{B_SSN}", f"{OBS_IDS}|obs-b", "claim-p2", "Patient/p2", *sent):
        text = text.replace(echoed, "")
    assert B_SECRET not in text and B_SSN not in text and "p2" not in text, text


def _no_b_entries(response: httpx.Response) -> None:
    """A search answer holds none of B's data (its links echo the request's own query)."""
    entries = response.json().get("entry", [])
    text = json.dumps(entries)
    assert B_SECRET not in text and B_SSN not in text and "p2" not in text, text


def _answer(response: httpx.Response) -> tuple[int, str]:
    """Status and diagnostics with the criteria/ids that differ between two probes
    removed, so that "B's data exists" and "nothing exists" can be compared exactly."""
    diagnostics = ""
    if "json" in response.headers.get("content-type", "") and response.content:
        body = response.json()
        if body.get("resourceType") == "OperationOutcome":
            diagnostics = "|".join(i.get("code", "") for i in body.get("issue", []))
    return response.status_code, diagnostics


def _count(world: Served, rtype: str) -> int:
    r = world.http.get(f"/fhir/{rtype}?_summary=count", headers=_admin(world))
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


# -- leak 1: conditional create ---------------------------------------------------------


def test_conditional_create_never_returns_another_patients_resource(world: Served):
    me = _me(world)
    patient = {"resourceType": "Patient", "name": [{"family": "A"}]}
    hidden = world.http.post(
        "/fhir/Patient",
        json=patient,
        headers={**me, **FHIR_JSON, "If-None-Exist": f"identifier={SSN}|{B_SSN}"},
    )
    absent = world.http.post(
        "/fhir/Patient",
        json=patient,
        headers={**me, **FHIR_JSON, "If-None-Exist": f"identifier={SSN}|000-00-0000"},
    )
    _no_b(hidden)
    assert _answer(hidden) == _answer(absent)
    assert hidden.status_code == 403  # a patient token cannot create a new Patient at all
    # The attack table's form: a body claiming A's own id got past the compartment check,
    # and the raw match then answered 200 with B's Patient.
    claiming = {**patient, "id": "p1"}
    hidden = world.http.post(
        "/fhir/Patient",
        json=claiming,
        headers={**me, **FHIR_JSON, "If-None-Exist": f"identifier={SSN}|{B_SSN}"},
    )
    absent = world.http.post(
        "/fhir/Patient",
        json=claiming,
        headers={**me, **FHIR_JSON, "If-None-Exist": f"identifier={SSN}|000-00-0000"},
    )
    _no_b(hidden)
    assert _answer(hidden) == _answer(absent)
    assert hidden.status_code == 403
    assert _count(world, "Patient") == 2


def test_conditional_create_with_a_match_only_another_patient_has_creates_in_my_compartment(
    world: Served,
):
    me = _me(world)
    mine = _observation("p1", "ignored", "obs-b")
    del mine["id"]
    r = world.http.post(
        "/fhir/Observation",
        json=mine,
        headers={**me, **FHIR_JSON, "If-None-Exist": f"identifier={OBS_IDS}|obs-b"},
    )
    assert r.status_code == 201, r.text
    _no_b(r)
    assert r.json()["subject"]["reference"] == "Patient/p1"
    # ... and its own visible match is found as usual (200, no second create).
    again = world.http.post(
        "/fhir/Observation",
        json=mine,
        headers={**me, **FHIR_JSON, "If-None-Exist": f"identifier={OBS_IDS}|obs-a"},
    )
    assert again.status_code == 200
    assert again.json()["id"] == "obs-p1"


# -- leak 2: bundle conditional references and ifNoneExist ------------------------------


def _transaction(entries: list[dict[str, Any]], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def _obs_entry(reference: str) -> dict[str, Any]:
    body = observation_for("p1", "laboratory")
    body["focus"] = [{"reference": reference}]
    return {
        "fullUrl": "urn:uuid:4f1b3c1e-0000-4000-8000-000000000001",
        "resource": body,
        "request": {"method": "POST", "url": "Observation"},
    }


def test_transaction_conditional_reference_cannot_resolve_to_another_patient(world: Served):
    me = _me(world)
    before = _count(world, "Observation")
    hidden = world.http.post(
        "/fhir",
        json=_transaction([_obs_entry(f"Patient?identifier={SSN}|{B_SSN}")]),
        headers={**me, **FHIR_JSON},
    )
    absent = world.http.post(
        "/fhir",
        json=_transaction([_obs_entry(f"Patient?identifier={SSN}|000-00-0000")]),
        headers={**me, **FHIR_JSON},
    )
    _no_b(hidden)
    assert _answer(hidden) == _answer(absent)
    assert hidden.status_code == 400
    assert _count(world, "Observation") == before  # nothing half-written
    # Its own patient resolves (and the reference is rewritten to it).
    ok = world.http.post(
        "/fhir",
        json=_transaction([_obs_entry(f"Patient?identifier={SSN}|999-11-1111")]),
        headers={**me, **FHIR_JSON},
    )
    assert ok.status_code == 200, ok.text


def test_transaction_conditional_reference_cannot_probe_another_patients_diagnoses(
    world: Served,
):
    """A chained conditional reference through B's data behaves as if B had none."""
    me = _me(world)
    hidden = world.http.post(
        "/fhir",
        json=_transaction([_obs_entry(f"Observation?identifier={OBS_IDS}|obs-b")]),
        headers={**me, **FHIR_JSON},
    )
    absent = world.http.post(
        "/fhir",
        json=_transaction([_obs_entry(f"Observation?identifier={OBS_IDS}|nothing")]),
        headers={**me, **FHIR_JSON},
    )
    _no_b(hidden)
    assert _answer(hidden) == _answer(absent)


def test_bundle_if_none_exist_ignores_another_patients_match(world: Served):
    me = _me(world)
    admin = _admin(world)
    for kind in ("transaction", "batch"):
        assert world.put(admin, _observation("p2", f"obs-p2-{kind}", f"obs-b-{kind}")).is_success
        body = _observation("p1", "x", f"obs-b-{kind}")
        del body["id"]
        entry = {
            "resource": body,
            "request": {
                "method": "POST",
                "url": "Observation",
                "ifNoneExist": f"identifier={OBS_IDS}|obs-b-{kind}",
            },
        }
        r = world.http.post("/fhir", json=_transaction([entry], kind), headers={**me, **FHIR_JSON})
        assert r.status_code == 200, r.text
        _no_b(r)
        assert r.json()["entry"][0]["response"]["status"].startswith("201"), r.text


# -- leak 3: existence oracles ----------------------------------------------------------


def test_conditional_update_answers_the_same_whether_or_not_another_patient_matches(
    world: Served,
):
    me = _me(world)
    body = _observation("p1", "x", "whatever")
    del body["id"]
    hidden = world.http.put(
        f"/fhir/Observation?identifier={OBS_IDS}|obs-b", json=body, headers={**me, **FHIR_JSON}
    )
    absent = world.http.put(
        f"/fhir/Observation?identifier={OBS_IDS}|nothing", json=body, headers={**me, **FHIR_JSON}
    )
    _no_b(hidden)
    assert _answer(hidden) == _answer(absent) == (201, "")
    # B's Observation is untouched.
    b = world.http.get("/fhir/Observation/obs-p2", headers=_admin(world))
    assert b.json()["meta"]["versionId"] == "1"
    # With the body naming an id: the same refusal for B's id and for a free one.
    named = {**body, "id": "obs-p2"}
    hidden = world.http.put(
        f"/fhir/Observation?identifier={OBS_IDS}|obs-b", json=named, headers={**me, **FHIR_JSON}
    )
    free = {**body, "id": "obs-free"}
    absent = world.http.put(
        f"/fhir/Observation?identifier={OBS_IDS}|nothing", json=free, headers={**me, **FHIR_JSON}
    )
    _no_b(hidden, "Observation/obs-p2")
    assert _answer(hidden) == _answer(absent)
    assert hidden.status_code == 404


def test_conditional_delete_answers_the_same_whether_or_not_another_patient_matches(
    world: Served,
):
    me = _me(world)
    hidden = world.http.delete(f"/fhir/Observation?identifier={OBS_IDS}|obs-b", headers=me)
    absent = world.http.delete(f"/fhir/Observation?identifier={OBS_IDS}|nothing", headers=me)
    assert _answer(hidden) == _answer(absent)
    assert hidden.status_code in (200, 204)
    b = world.http.get("/fhir/Observation/obs-p2", headers=_admin(world))
    assert b.status_code == 200  # not deleted


def test_put_at_another_patients_id_and_at_a_free_id_answer_alike(world: Served):
    me = _me(world)
    hidden = world.put(me, {**claim_for("p1"), "id": "claim-p2"})
    absent = world.put(me, {**claim_for("p1"), "id": "claim-nobody"})
    _no_b(hidden)
    assert _answer(hidden) == _answer(absent) == (404, "not-found")
    # Its own resources it updates as usual.
    assert world.put(me, {**claim_for("p1"), "id": "claim-p1"}).status_code == 200


def test_batch_entries_answer_alike_for_hidden_and_missing_resources(world: Served):
    me = _me(world)

    def entries(target: str, identifier: str) -> list[dict[str, Any]]:
        return [
            {"request": {"method": "DELETE", "url": f"Observation?identifier={identifier}"}},
            {
                "resource": {**claim_for("p1"), "id": target},
                "request": {"method": "PUT", "url": f"Claim/{target}"},
            },
            {"request": {"method": "DELETE", "url": f"Claim/{target}x"}},
        ]

    hidden = world.http.post(
        "/fhir",
        json=_transaction(entries("claim-p2", f"{OBS_IDS}|obs-b"), "batch"),
        headers={**me, **FHIR_JSON},
    )
    absent = world.http.post(
        "/fhir",
        json=_transaction(entries("claim-zz", f"{OBS_IDS}|nothing"), "batch"),
        headers={**me, **FHIR_JSON},
    )
    assert hidden.status_code == absent.status_code == 200
    _no_b(hidden)
    statuses = [e["response"]["status"] for e in hidden.json()["entry"]]
    assert statuses == [e["response"]["status"] for e in absent.json()["entry"]]
    # The same transaction: the same refusal either way.
    t_hidden = world.http.post(
        "/fhir",
        json=_transaction(entries("claim-p2", f"{OBS_IDS}|obs-b")[1:2]),
        headers={**me, **FHIR_JSON},
    )
    t_absent = world.http.post(
        "/fhir",
        json=_transaction(entries("claim-zz", f"{OBS_IDS}|nothing")[1:2]),
        headers={**me, **FHIR_JSON},
    )
    _no_b(t_hidden)
    assert _answer(t_hidden) == _answer(t_absent)
    assert t_hidden.status_code == 404


# -- leak 4: system-level search --------------------------------------------------------


def test_system_count_counts_only_my_compartment(world: Served):
    me = world.token("patient/*.rs", patient="p1")
    r = world.http.get("/fhir?_summary=count", headers=me)
    assert r.status_code == 200, r.text
    mine = r.json()["total"]
    # Patient/p1, Claim/claim-p1, Observation/obs-p1 and the Provenance of Patient/p1.
    assert mine == 4
    # More of B's data changes nothing.
    admin = _admin(world)
    assert world.put(admin, _observation("p2", "obs-p2-more", "obs-c")).status_code == 201
    assert world.http.get("/fhir?_summary=count", headers=me).json()["total"] == mine
    everything = world.http.get("/fhir?_count=100", headers=me)
    _no_b_entries(everything)
    entries = everything.json()["entry"]
    found = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in entries}
    assert {rid for rtype, rid in found if rtype != "Provenance"} == {"p1", "claim-p1", "obs-p1"}
    assert len(found) == mine


def test_system_search_by_type_and_id_cannot_reach_another_patient(world: Served):
    me = world.token("patient/*.rs", patient="p1")
    for url in (
        "/fhir?_type=Patient,Claim&_id=p2,claim-p2",
        "/fhir?_id=p2",
        "/fhir?_type=Patient,Observation&_summary=count&_id=p2,obs-p2",
        "/fhir?_type=Patient,Claim&_total=accurate",
    ):
        r = world.http.get(url, headers=me)
        assert r.status_code == 200, r.text
        _no_b_entries(r)
        assert r.json().get("total", 0) <= 2
    r = world.http.get("/fhir?_type=Patient,Claim&_total=accurate", headers=me)
    assert r.json()["total"] == 2
    r = world.http.get("/fhir?_type=Patient,Observation&_summary=count&_id=p2,obs-p2", headers=me)
    assert r.json()["total"] == 0


def test_system_search_never_returns_internal_records(world: Served):
    admin = world.token("system/*.rs", client_id="payer")
    for url in (
        "/fhir?_id=payer",
        "/fhir?_id=coverage-app,guardian,ada,head",
        "/fhir?_lastUpdated=gt2000&_count=1000",
    ):
        r = world.http.get(url, headers=admin)
        assert r.status_code == 200, r.text
        types = {e["resource"]["resourceType"] for e in r.json().get("entry", [])}
        assert not any(t.startswith("x-") for t in types), types
        assert "correct horse" not in r.text and "redirect" not in r.text
    r = world.http.get("/fhir?_id=payer,guardian&_summary=count", headers=admin)
    assert r.json()["total"] == 0


# -- leak 5: writes that leave the compartment ------------------------------------------


def test_a_create_whose_body_claims_my_id_is_judged_under_the_id_it_gets(world: Served):
    me = _me(world)
    r = world.http.post(
        "/fhir/Patient",
        json={"resourceType": "Patient", "id": "p1", "name": [{"family": "Clone"}]},
        headers={**me, **FHIR_JSON},
    )
    assert r.status_code == 403
    assert _count(world, "Patient") == 2


def test_a_patient_token_cannot_write_a_reference_to_another_patient(world: Served):
    me = _me(world)
    body = observation_for("p1", "laboratory")
    body["performer"] = [{"reference": "Patient/p2"}]
    r = world.http.post("/fhir/Observation", json=body, headers={**me, **FHIR_JSON})
    assert r.status_code == 403
    body = observation_for("p1", "laboratory")
    body["focus"] = [{"reference": "Patient/p2"}]
    r = world.http.post("/fhir/Observation", json=body, headers={**me, **FHIR_JSON})
    assert r.status_code == 403
    patch = [{"op": "add", "path": "/performer", "value": [{"reference": "Patient/p2"}]}]
    r = world.http.patch(
        "/fhir/Observation/obs-p1",
        json=patch,
        headers={**me, "Content-Type": "application/json-patch+json"},
    )
    assert r.status_code == 403
    admin = _admin(world)
    r = world.http.get("/fhir/Observation?performer=Patient/p2", headers=admin)
    assert r.json().get("total", 0) == 0


def test_another_patients_deleted_resource_cannot_be_recreated(world: Served):
    admin = _admin(world)
    assert world.http.delete("/fhir/Claim/claim-p2", headers=admin).status_code in (200, 204)
    me = _me(world)
    r = world.put(me, {**claim_for("p1"), "id": "claim-p2"})
    assert _answer(r) == (404, "not-found")
    assert world.http.get("/fhir/Claim/claim-p2", headers=admin).status_code == 410
    # Its own deleted resource it may put back.
    assert world.http.delete("/fhir/Claim/claim-p1", headers=me).status_code in (200, 204)
    assert world.put(me, {**claim_for("p1"), "id": "claim-p1"}).status_code == 201


def test_a_patient_token_creates_only_with_server_assigned_ids(world: Served):
    me = _me(world)
    r = world.put(me, {**observation_for("p1", "laboratory"), "id": "my-chosen-id"})
    assert _answer(r) == (404, "not-found")
    r = world.http.post(
        "/fhir/Observation", json=observation_for("p1", "laboratory"), headers={**me, **FHIR_JSON}
    )
    assert r.status_code == 201
