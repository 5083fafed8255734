"""The FHIR terminology operations over HTTP (GET and POST with Parameters)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from terminology import systems

from .conftest import parameters, properties

ICD = systems.ICD10CM


def lookup(client: TestClient, **params: str) -> dict:
    response = client.get("/fhir/CodeSystem/$lookup", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_lookup_answers_display_hierarchy_and_effective_dates(client: TestClient) -> None:
    body = lookup(client, system=ICD, code="E11.9", date="2026-01-15")
    p = parameters(body)
    assert p["name"] == "ICD10CM" and p["version"] == "2026"
    assert p["display"] == "Type 2 diabetes mellitus without complications"
    props = properties(body)
    assert props["billable"] == [True]
    assert props["parent"] == ["E11"]
    assert props["effective-from"] == ["2025-10-01"]
    assert props["effective-to"] == ["2026-09-30"]
    assert any("type 1 diabetes" in n for n in props["excludes1"])
    assert props["chapter"] == ["4"] and props["block"] == ["E08-E13"]


def test_lookup_of_a_header_lists_its_children(client: TestClient) -> None:
    props = properties(lookup(client, system=ICD, code="E11", date="2026-01-15"))
    assert props["billable"] == [False]
    assert "E11.9" in props["child"] and "E11.A" in props["child"]


def test_lookup_by_post_with_a_coding(client: TestClient) -> None:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "coding", "valueCoding": {"system": ICD, "code": "T14.90XA"}},
            {"name": "date", "valueDateTime": "2025-06-01"},
        ],
    }
    response = client.post("/fhir/CodeSystem/$lookup", json=body)
    assert response.status_code == 200
    p = parameters(response.json())
    assert p["version"] == "2025" and p["display"] == "Injury, unspecified, initial encounter"


def test_lookup_of_an_unknown_code_is_a_404_operation_outcome(client: TestClient) -> None:
    response = client.get("/fhir/CodeSystem/$lookup", params={"system": ICD, "code": "E11.99"})
    assert response.status_code == 404
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "not-found"
    assert "E11.99" in outcome["issue"][0]["diagnostics"]


def test_lookup_without_code_is_a_400(client: TestClient) -> None:
    response = client.get("/fhir/CodeSystem/$lookup", params={"system": ICD})
    assert response.status_code == 400
    assert response.json()["issue"][0]["code"] == "required"


def test_lookup_of_an_unknown_system_is_a_404(client: TestClient) -> None:
    response = client.get("/fhir/CodeSystem/$lookup", params={"system": "urn:x", "code": "1"})
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("code", "day", "result", "reason"),
    [
        ("E11.9", "2026-01-15", True, "valid"),
        ("E11", "2026-01-15", False, "not-billable"),
        ("E11.A", "2025-05-01", False, "not-effective"),
        ("E11.A", "2026-01-15", True, "valid"),
        ("S30.1XXA", "2026-01-15", False, "not-effective"),
        ("XYZ", "2026-01-15", False, "unknown-code"),
    ],
)
def test_codesystem_validate_code_with_a_date(
    client: TestClient, code: str, day: str, result: bool, reason: str
) -> None:
    response = client.get(
        "/fhir/CodeSystem/$validate-code", params={"url": ICD, "code": code, "date": day}
    )
    assert response.status_code == 200
    p = parameters(response.json())
    assert p["result"] is result and p["reason"] == reason
    assert p["message"]


def test_valueset_validate_code_checks_membership(client: TestClient) -> None:
    url = f"{ICD}?fhir_vs=isa/E11"
    inside = client.get(
        "/fhir/ValueSet/$validate-code",
        params={"url": url, "system": ICD, "code": "E11.65", "date": "2026-01-15"},
    )
    outside = client.get(
        "/fhir/ValueSet/$validate-code",
        params={"url": url, "system": ICD, "code": "E10.9", "date": "2026-01-15"},
    )
    assert parameters(inside.json())["result"] is True
    out = parameters(outside.json())
    assert out["result"] is False and out["reason"] == "not-in-valueset"


def test_valueset_validate_code_by_post(client: TestClient) -> None:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "url", "valueUri": f"{ICD}?fhir_vs"},
            {"name": "coding", "valueCoding": {"system": ICD, "code": "E11"}},
        ],
    }
    p = parameters(client.post("/fhir/ValueSet/$validate-code", json=body).json())
    assert p["result"] is False and p["reason"] == "not-billable"


def test_expand_every_billable_code_under_e11(client: TestClient) -> None:
    response = client.get(
        "/fhir/ValueSet/$expand",
        params={"url": f"{ICD}?fhir_vs=isa/E11", "excludeNotForUI": "true", "date": "2026-01-15"},
    )
    assert response.status_code == 200
    expansion = response.json()["expansion"]
    codes = [c["code"] for c in expansion["contains"]]
    assert expansion["total"] == len(codes) and "E11.9" in codes and "E11" not in codes
    assert {"name": "version", "valueUri": f"{ICD}|2026"} in expansion["parameter"]


def test_expand_marks_headers_abstract(client: TestClient) -> None:
    expansion = client.get(
        "/fhir/ValueSet/$expand", params={"url": f"{ICD}?fhir_vs=isa/E11.6", "count": "50"}
    ).json()["expansion"]
    by_code = {c["code"]: c for c in expansion["contains"]}
    assert by_code["E11.6"]["abstract"] is True and "abstract" not in by_code["E11.65"]


def test_expand_with_filter_count_and_offset(client: TestClient) -> None:
    params = {"url": f"{ICD}?fhir_vs", "filter": "type 2 diabetes", "count": "5"}
    first = client.get("/fhir/ValueSet/$expand", params=params).json()["expansion"]
    second = client.get("/fhir/ValueSet/$expand", params={**params, "offset": "5"}).json()
    assert first["total"] > 10 and len(first["contains"]) == 5
    assert second["expansion"]["offset"] == 5
    assert not {c["code"] for c in first["contains"]} & {
        c["code"] for c in second["expansion"]["contains"]
    }


def test_expand_by_post_with_a_named_value_set(client: TestClient) -> None:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "url", "valueUri": "https://billable.dev/fhir/ValueSet/pos"},
            {"name": "filter", "valueString": "office"},
        ],
    }
    expansion = client.post("/fhir/ValueSet/$expand", json=body).json()["expansion"]
    assert [c["code"] for c in expansion["contains"]] == ["11"]


def test_expand_of_an_unknown_value_set_is_a_404(client: TestClient) -> None:
    response = client.get("/fhir/ValueSet/$expand", params={"url": "http://example.org/vs"})
    assert response.status_code == 404


def test_expand_rejects_a_negative_count(client: TestClient) -> None:
    response = client.get("/fhir/ValueSet/$expand", params={"url": f"{ICD}?fhir_vs", "count": "-1"})
    assert response.status_code == 400


def translate(client: TestClient, **params: str) -> dict:
    response = client.get("/fhir/ConceptMap/$translate", params=params)
    assert response.status_code == 200, response.text
    return parameters(response.json())


def test_translate_returns_all_candidates_when_age_is_unknown(client: TestClient) -> None:
    p = translate(client, system=systems.SNOMED, code="386661006", targetsystem=ICD)
    matches = p["match"]
    codes = [m["concept"]["code"] for m in matches]
    assert codes == ["P81.9", "R50.9"]
    assert all(m["ruleEvaluated"] is False for m in matches)
    assert matches[0]["mapRule"] == "IF AGE < 28 DAYS"


def test_translate_applies_the_age_dependency(client: TestClient) -> None:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "system", "valueUri": systems.SNOMED},
            {"name": "code", "valueCode": "386661006"},
            {"name": "targetsystem", "valueUri": ICD},
            {
                "name": "dependency",
                "part": [
                    {"name": "element", "valueUri": "age"},
                    {"name": "concept", "valueCodeableConcept": {"coding": [{"code": "40"}]}},
                ],
            },
        ],
    }
    p = parameters(client.post("/fhir/ConceptMap/$translate", json=body).json())
    assert p["result"] is True
    assert p["match"]["concept"]["code"] == "R50.9"
    assert p["match"]["equivalence"] == "inexact"


def test_translate_applies_the_sex_dependency(client: TestClient) -> None:
    male = translate(client, system=systems.SNOMED, code="22523008", sex="male")
    female = translate(client, system=systems.SNOMED, code="22523008", sex="female")
    assert male["result"] is True
    assert female["result"] is False  # a vasectomy has no code for a female patient


def test_translate_preventive_visit_by_age_band(client: TestClient) -> None:
    for age, code in (("0.5", "99391"), ("30", "99395"), ("50", "99396"), ("70", "99397")):
        p = translate(
            client, system=systems.SNOMED, code="25656009", age=age, targetsystem=systems.CPT
        )
        assert p["match"]["concept"]["code"] == code


def test_translate_returns_every_group_of_a_combination(client: TestClient) -> None:
    # DTaP: the vaccine by age (group 1) and its administration (group 2).
    p = translate(
        client, system=systems.SNOMED, code="399014008", age="4", targetsystem=systems.CPT
    )
    assert [(m["mapGroup"], m["concept"]["code"]) for m in p["match"]] == [
        (1, "90700"),
        (2, "90471"),
    ]


def test_translate_carries_the_advice(client: TestClient) -> None:
    p = translate(client, system=systems.SNOMED, code="368581000119106", targetsystem=ICD)
    assert p["match"]["concept"]["code"] == "E11.40"
    assert "ADDITIONAL CODE" in p["match"]["mapAdvice"]


def test_translate_of_a_non_billable_procedure_explains_why(client: TestClient) -> None:
    p = translate(client, system=systems.SNOMED, code="3457005")
    assert p["result"] is False
    assert p["match"]["equivalence"] == "unmatched" and "Not separately" in p["message"]


def test_translate_to_icd10pcs_for_inpatient_claims(client: TestClient) -> None:
    p = translate(client, system=systems.SNOMED, code="45595009", targetsystem=systems.ICD10PCS)
    assert p["match"]["concept"]["code"] == "0FT44ZZ"


def test_translate_of_an_unmapped_code(client: TestClient) -> None:
    p = translate(client, system=systems.SNOMED, code="1")
    assert p["result"] is False and "No map entry" in p["message"]


def test_translate_rejects_reverse(client: TestClient) -> None:
    response = client.get(
        "/fhir/ConceptMap/$translate",
        params={"system": ICD, "code": "R50.9", "reverse": "true"},
    )
    assert response.status_code == 422


def test_translate_rejects_a_bad_sex(client: TestClient) -> None:
    response = client.get(
        "/fhir/ConceptMap/$translate",
        params={"system": systems.SNOMED, "code": "22523008", "sex": "robot"},
    )
    assert response.status_code == 400


def test_code_systems_are_listed_without_inlining_large_ones(client: TestClient) -> None:
    bundle = client.get("/fhir/CodeSystem", params={"url": ICD}).json()
    assert bundle["total"] == 3  # FY2025, FY2026, FY2027
    for entry in bundle["entry"]:
        assert entry["resource"]["content"] == "not-present"
        assert "concept" not in entry["resource"]
    versions = {e["resource"]["version"] for e in bundle["entry"]}
    assert versions == {"2025", "2026", "2027"}


def test_code_system_search_by_name_and_version(client: TestClient) -> None:
    bundle = client.get("/fhir/CodeSystem", params={"name": "ICD10CM", "version": "2026"}).json()
    assert bundle["total"] == 1
    assert bundle["entry"][0]["resource"]["status"] == "active"


def test_code_system_read_of_a_small_system_inlines_concepts(client: TestClient) -> None:
    bundle = client.get("/fhir/CodeSystem", params={"name": "POS"}).json()
    rid = bundle["entry"][0]["resource"]["id"]
    resource = client.get(f"/fhir/CodeSystem/{rid}").json()
    assert resource["content"] == "complete"
    assert {"11", "21", "23"} <= {c["code"] for c in resource["concept"]}


def test_code_system_read_inlines_a_large_system_only_when_asked(client: TestClient) -> None:
    rid = "icd10cm-2026-2025-10-01"
    plain = client.get(f"/fhir/CodeSystem/{rid}").json()
    assert plain["content"] == "not-present" and plain["count"] > 98000
    full = client.get(f"/fhir/CodeSystem/{rid}", params={"_summary": "false"})
    assert len(full.json()["concept"]) == plain["count"]


def test_unknown_code_system_read_is_a_404(client: TestClient) -> None:
    assert client.get("/fhir/CodeSystem/nope").status_code == 404


def test_concept_maps_are_listed_and_readable(client: TestClient) -> None:
    bundle = client.get("/fhir/ConceptMap").json()
    urls = {e["resource"]["url"] for e in bundle["entry"]}
    assert systems.MAP_SNOMED_ICD10CM in urls and systems.MAP_SNOMED_CPT in urls
    rid = next(
        e["resource"]["id"]
        for e in bundle["entry"]
        if e["resource"]["url"] == systems.MAP_SNOMED_ICD10CM
    )
    resource = client.get(f"/fhir/ConceptMap/{rid}").json()
    assert resource["group"][0]["target"] == ICD
    assert "Coverage" in resource["description"]


def test_value_sets_are_listed_and_readable(client: TestClient) -> None:
    bundle = client.get("/fhir/ValueSet").json()
    ids = {e["resource"]["id"] for e in bundle["entry"]}
    assert {"icd10cm", "pos", "carc"} <= ids
    assert client.get("/fhir/ValueSet/icd10cm").json()["compose"]["include"][0]["system"] == ICD
