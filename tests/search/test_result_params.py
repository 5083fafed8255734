"""Result parameters, paging, handling of unknown parameters, and conditional writes."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from server.search.paging import encode_cursor
from tests.search.conftest import FHIR_JSON, ids_of
from tests.search.fixtures import RESOURCES


def link(bundle: dict[str, Any], relation: str) -> str | None:
    for entry in bundle.get("link", []):
        if entry["relation"] == relation:
            url: str = entry["url"]
            return url.replace("http://testserver", "")
    return None


def page_ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def test_paging_walks_every_match_once_forwards_and_backwards(loaded: TestClient) -> None:
    pages = [loaded.get("/fhir/Patient?_count=1&_sort=-birthdate").json()]
    while (nxt := link(pages[-1], "next")) is not None:
        pages.append(loaded.get(nxt).json())
    ids = [i for p in pages for i in page_ids(p)]
    assert sorted(ids) == ["p1", "p2", "p3", "p4"]
    assert ids[:3] == ["p3", "p2", "p1"] or ids[1:] == ["p3", "p2", "p1"]  # missing: one end
    back = page_ids(loaded.get(link(pages[-1], "previous") or "").json())
    assert back == [ids[-2]]


def test_paging_neither_repeats_nor_skips_when_data_changes(loaded: TestClient) -> None:
    first = loaded.get("/fhir/Claim?_count=2&_sort=created").json()
    assert page_ids(first) == ["cl3", "cl1"]
    # a claim sorting before the cursor appears, then is deleted: the next page is stable
    earlier = loaded.get("/fhir/Claim/cl3").json()
    earlier.update(id="cl0", created="2020-01-01")
    earlier.pop("meta")
    assert loaded.put("/fhir/Claim/cl0", json=earlier, headers=FHIR_JSON).status_code == 201
    second = loaded.get(link(first, "next") or "").json()
    assert page_ids(second) == ["cl2"]
    assert link(second, "next") is None
    assert loaded.delete("/fhir/Claim/cl0").status_code in (200, 204)


def test_an_expired_or_tampered_cursor_is_410_a_foreign_one_400(loaded: TestClient) -> None:
    expired = encode_cursor(("Patient", "p1"), False, "whatever", now=time.time() - 7200)
    r = loaded.get(f"/fhir/Patient?_count=1&_cursor={expired}")
    assert r.status_code == 410
    assert r.json()["resourceType"] == "OperationOutcome"
    fresh = encode_cursor(("Patient", "p1"), False, "whatever")
    tampered = fresh[:-2] + ("AA" if not fresh.endswith("AA") else "BB")
    assert loaded.get(f"/fhir/Patient?_count=1&_cursor={tampered}").status_code == 410
    assert loaded.get("/fhir/Patient?_cursor=%25%25").status_code == 400
    nxt = link(loaded.get("/fhir/Patient?_count=1").json(), "next") or ""
    other = nxt.replace("/fhir/Patient?", "/fhir/Patient?gender=male&")
    assert loaded.get(other).status_code == 400


def test_count_total_and_summary(loaded: TestClient) -> None:
    b = loaded.get("/fhir/Patient?_summary=count").json()
    assert b["total"] == 4 and "entry" not in b
    b = loaded.get("/fhir/Patient?_count=1&_total=accurate").json()
    assert b["total"] == 4 and len(b["entry"]) == 1
    b = loaded.get("/fhir/Patient?_count=1&_total=none").json()
    assert "total" not in b
    b = loaded.get("/fhir/Claim?_id=cl1&_summary=true").json()
    claim = b["entry"][0]["resource"]
    assert "item" not in claim and claim["status"] == "active"
    assert any(t["code"] == "SUBSETTED" for t in claim["meta"]["tag"])
    b = loaded.get("/fhir/Patient?_id=p1&_elements=birthDate").json()
    assert set(b["entry"][0]["resource"]) == {"resourceType", "id", "meta", "birthDate"}


def test_include_revinclude_and_iterate(loaded: TestClient) -> None:
    b = loaded.get(
        "/fhir/Condition?_id=c1&_include=Condition:encounter&_include:iterate=Encounter:participant"
    ).json()
    assert ids_of(b) == {"c1"}
    assert ids_of(b, "include") == {"e1", "dr1"}
    b = loaded.get("/fhir/Patient?_id=p2&_revinclude=Claim:patient").json()
    assert ids_of(b, "include") == {"cl2"}
    b = loaded.get("/fhir/Encounter?_id=e1&_include=*").json()
    assert ids_of(b, "include") == {"p1", "dr1", "o1"}


def test_revinclude_star_brings_every_resource_that_references_a_match(
    loaded: TestClient,
) -> None:
    def references_p2(value: Any) -> bool:
        if isinstance(value, dict):
            if value.get("reference") == "Patient/p2":
                return True
            return any(references_p2(v) for v in value.values())
        if isinstance(value, list):
            return any(references_p2(v) for v in value)
        return False

    expected = {r["id"] for r in RESOURCES if r["resourceType"] != "Patient" and references_p2(r)}
    assert len(expected) >= 3
    b = loaded.get("/fhir/Patient?_id=p2&_revinclude=*").json()
    assert ids_of(b) == {"p2"}
    assert ids_of(b, "include") == expected


def test_unknown_parameters_are_a_warning_or_a_strict_400(loaded: TestClient) -> None:
    b = loaded.get("/fhir/Patient?gender=male&frobnicate=1").json()
    assert ids_of(b) == {"p2"}
    outcomes = [e for e in b["entry"] if e["search"]["mode"] == "outcome"]
    assert "frobnicate" in outcomes[0]["resource"]["issue"][0]["diagnostics"]
    assert "frobnicate" not in (link(b, "self") or "")
    r = loaded.get("/fhir/Patient?frobnicate=1", headers={"Prefer": "handling=strict"})
    assert r.status_code == 400
    r = loaded.get("/fhir/Patient?birthdate=2020-13-45")
    assert r.status_code == 400 and "birthdate" in r.text
    assert loaded.get("/fhir/Patient?birthdate=xx2020").status_code == 400
    assert loaded.get("/fhir/Observation?value-quantity=abc").status_code == 400


def test_system_and_compartment_search(loaded: TestClient) -> None:
    b = loaded.get("/fhir?_type=Patient,Claim&_id=p1,cl1").json()
    assert ids_of(b) == {"p1", "cl1"}
    b = loaded.get("/fhir/Patient/p1/Claim").json()
    assert ids_of(b) == {"cl1", "cl3"}
    b = loaded.get("/fhir/Patient/p1/Condition?code=E11.9").json()
    assert ids_of(b) == {"c1"}
    assert loaded.get("/fhir/Patient/p1/ValueSet").status_code == 404


def test_conditional_create_uses_full_search(loaded: TestClient) -> None:
    r = loaded.post(
        "/fhir/Patient",
        json={"resourceType": "Patient", "name": [{"family": "Dup"}]},
        headers={**FHIR_JSON, "If-None-Exist": "family=muller&birthdate=1980"},
    )
    assert r.status_code == 200 and r.json()["id"] == "p1"
    r = loaded.post(
        "/fhir/Patient",
        json={"resourceType": "Patient"},
        headers={**FHIR_JSON, "If-None-Exist": "family=muller&_sort=family"},
    )
    assert r.status_code == 400
