"""``GET /fhir/Claim/{id}/$x12`` on both backends: a stored, coded Claim as an 837."""

from __future__ import annotations

from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from server.x12 import reader
from server.x12.loops_837 import patient_control_number_of
from tests.x12.conftest import case_named, load_claim


def segments_of(text: str, segment_id: str) -> list[list[str]]:
    return [
        s.split("*") for s in text.replace("\n", "").split("~") if s.startswith(segment_id + "*")
    ]


def test_claim_x12_is_a_valid_837p_whose_clm01_is_the_patient_control_number(client: TestClient):
    claim = load_claim(client, case_named("est_20min_99213"))
    r = client.get(f"/fhir/Claim/{claim['id']}/$x12")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/edi-x12")
    text = r.text
    assert reader.validate(text) == []
    assert segments_of(text, "GS")[0][8] == "005010X222A1"
    clm = segments_of(text, "CLM")[0]
    assert clm[1] == patient_control_number_of(claim["id"])
    assert clm[5] == "11:B:1"  # office, professional, original
    assert segments_of(text, "SV1")[0][1] == "HC:99213"
    assert segments_of(text, "HI")[0][1].startswith("ABK:")
    # rendering provider (2310B) from the care team, with its NPI
    assert any(s[1] == "82" and s[9] == "1245319599" for s in segments_of(text, "NM1"))


def test_inpatient_claim_x12_is_a_valid_837i_with_admission_data(client: TestClient):
    claim = load_claim(client, case_named("inpatient_institutional_pcs"))
    r = client.get(f"/fhir/Claim/{claim['id']}/$x12")
    assert r.status_code == 200, r.text
    text = r.text
    assert reader.validate(text) == []
    assert segments_of(text, "GS")[0][8] == "005010X223A2"
    assert segments_of(text, "CLM")[0][5] == "11:A:1"  # hospital inpatient, original
    assert [s[1] for s in segments_of(text, "DTP")][:3] == ["096", "434", "435"]
    assert segments_of(text, "CL1")
    assert any(s[1].startswith("BBR:") for s in segments_of(text, "HI"))  # ICD-10-PCS
    assert segments_of(text, "SV2")[0][1] == "0120"  # room and board revenue code
    assert any(s[1] == "71" for s in segments_of(text, "NM1"))  # attending provider


def test_control_numbers_never_repeat_and_survive_a_restart(settings: Settings):
    seen = []
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        claim = load_claim(client, case_named("est_20min_99213"))
        for _ in range(3):
            r = client.get(f"/fhir/Claim/{claim['id']}/$x12")
            seen.append(int(r.headers["x-x12-control-number"]))
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        r = client.get(f"/fhir/Claim/{claim['id']}/$x12")
        seen.append(int(r.headers["x-x12-control-number"]))
        assert segments_of(r.text, "ISA")[0][13] == f"{seen[-1]:09d}"
    assert seen == sorted(set(seen)) and len(seen) == 4


def test_a_claim_without_a_member_id_is_refused_naming_the_element_and_nothing_is_written(
    client: TestClient,
):
    good = load_claim(client, case_named("est_20min_99213"))
    before = int(client.get(f"/fhir/Claim/{good['id']}/$x12").headers["x-x12-control-number"])
    claim = load_claim(client, case_named("est_30min_99214"), without_member_id=True)
    r = client.get(f"/fhir/Claim/{claim['id']}/$x12")
    assert r.status_code == 422, r.text
    messages = [i["diagnostics"] for i in r.json()["issue"]]
    assert any("2010BA NM109" in m and "subscriber member id" in m for m in messages), messages
    assert r.json()["issue"][0]["expression"] == ["Coverage.subscriberId"]
    # No control number was used up by the refusal.
    after = int(client.get(f"/fhir/Claim/{good['id']}/$x12").headers["x-x12-control-number"])
    assert after == before + 1


def test_unknown_claim_is_404(client: TestClient):
    r = client.get("/fhir/Claim/nope/$x12")
    assert r.status_code == 404
    assert r.json()["resourceType"] == "OperationOutcome"


def test_the_capability_statement_lists_the_x12_operations(client: TestClient):
    statement = client.get("/fhir/metadata").json()
    rest = statement["rest"][0]
    assert "import-x12" in [o["name"] for o in rest.get("operation", [])]
    claim = next(r for r in rest["resource"] if r["type"] == "Claim")
    assert "x12" in [o["name"] for o in claim.get("operation", [])]


def test_concurrent_allocations_never_share_a_control_number(client: TestClient):
    import asyncio

    from server.x12.control import next_control_number

    repo = client.app.state.repository  # type: ignore[attr-defined]

    async def many() -> list[int]:
        return list(await asyncio.gather(*(next_control_number(repo) for _ in range(12))))

    assert client.portal is not None
    numbers = client.portal.call(many)
    assert sorted(numbers) == list(range(1, 13))
