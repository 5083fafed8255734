"""R4 4.0.1 validation as a specification: required bindings (in resources, datatypes,
backbones and choice types), core invariants (a failing and a passing case each), every
problem in one answer, and R4 rather than R4B."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from server.errors import FhirError
from server.validation import resource_issues, validate_resource

UCUM = "http://unitsofmeasure.org"


def patient(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "gender": "female", "birthDate": "1980-02-03", **extra}


def encounter(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/p1"},
        **extra,
    }


def observation(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        **extra,
    }


def claim(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Claim",
        "status": "active",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                    "code": "professional",
                }
            ]
        },
        "use": "claim",
        "patient": {"reference": "Patient/p1"},
        "created": "2026-01-02",
        "provider": {"reference": "Organization/o1"},
        "priority": {"coding": [{"code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/c1"}}],
        **extra,
    }


def condition(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Condition", "subject": {"reference": "Patient/p1"}, **extra}


def issues_of(resource: dict[str, Any]) -> list[tuple[str, str]]:
    return [(i.code, i.expression[0]) for i in resource_issues(resource)]


def the_only_issue(resource: dict[str, Any]) -> tuple[str, str]:
    found = issues_of(resource)
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize(
    "resource",
    [
        patient(),
        encounter(),
        observation(valueQuantity={"value": 60, "system": UCUM, "code": "/min"}),
        claim(),
        condition(),
    ],
)
def test_valid_resources_have_no_issue(resource: dict[str, Any]):
    assert issues_of(resource) == []
    validate_resource(resource)


@pytest.mark.parametrize(
    ("resource", "location"),
    [
        (patient(gender="bogus"), "Patient.gender"),
        (encounter(status="done"), "Encounter.status"),
        (observation(status="finalized"), "Observation.status"),
        (claim(status="bogus"), "Claim.status"),
        (claim(use="nonsense"), "Claim.use"),
    ],
)
def test_a_code_outside_its_required_binding_is_one_issue_at_its_location(resource, location):
    assert the_only_issue(resource) == ("code-invalid", location)
    with pytest.raises(FhirError) as caught:
        validate_resource(resource)
    assert caught.value.status == 400
    assert "required value set" in caught.value.issues[0].diagnostics


@pytest.mark.parametrize(
    ("resource", "location"),
    [
        (patient(identifier=[{"use": "primary", "value": "1"}]), "Patient.identifier[0].use"),
        (patient(telecom=[{"system": "pager2", "value": "1"}]), "Patient.telecom[0].system"),
        (patient(name=[{"use": "nick", "family": "X"}]), "Patient.name[0].use"),
        (patient(address=[{"use": "house", "city": "X"}]), "Patient.address[0].use"),
        (
            patient(
                text={
                    "status": "made-up",
                    "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>',
                }
            ),
            "Patient.text.status",
        ),
        (
            observation(valueQuantity={"value": 1, "comparator": "~", "system": UCUM, "code": "1"}),
            "Observation.valueQuantity.comparator",
        ),
        (
            claim(total={"value": 1, "currency": "dollars"}),
            "Claim.total.currency",
        ),
    ],
)
def test_bindings_inside_datatypes_and_choice_types(resource, location):
    assert the_only_issue(resource) == ("code-invalid", location)


def test_bindings_inside_nested_backbone_elements():
    bad = claim(related=[{"relationship": {"text": "x"}}])
    bad["item"] = [
        {
            "sequence": 1,
            "productOrService": {"text": "visit"},
            "detail": [
                {
                    "sequence": 1,
                    "productOrService": {"text": "d"},
                    "net": {"value": 1, "currency": "usd"},
                }
            ],
        }
    ]
    assert the_only_issue(bad) == ("code-invalid", "Claim.item[0].detail[0].net.currency")
    consent = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"code": "AMB"},
        "statusHistory": [{"status": "later", "period": {"start": "2020-01-01"}}],
    }
    assert the_only_issue(consent) == ("code-invalid", "Encounter.statusHistory[0].status")


def test_a_required_codeableconcept_binding_needs_a_coding_from_the_value_set():
    system = "http://terminology.hl7.org/CodeSystem/condition-clinical"
    good = condition(clinicalStatus={"coding": [{"system": system, "code": "active"}]})
    assert issues_of(good) == []
    wrong_system = condition(clinicalStatus={"coding": [{"system": "urn:x", "code": "active"}]})
    assert the_only_issue(wrong_system) == ("code-invalid", "Condition.clinicalStatus")
    text_only = condition(clinicalStatus={"text": "active"})
    assert the_only_issue(text_only) == ("code-invalid", "Condition.clinicalStatus")


# -- invariants: each fails once and passes once ---------------------------------------

ORG = {"resourceType": "Organization", "id": "o1", "name": "Acme"}

INVARIANTS = [
    (
        "ref-1",
        patient(managingOrganization={"reference": "#nope"}),
        patient(contained=[ORG], managingOrganization={"reference": "#o1"}),
        "Patient.managingOrganization",
    ),
    (
        "per-1",
        encounter(period={"start": "2026-01-02T10:00:00Z", "end": "2026-01-02T09:00:00Z"}),
        encounter(period={"start": "2026-01-02T10:00:00+02:00", "end": "2026-01-02T09:00:00Z"}),
        "Encounter.period",
    ),
    (
        "obs-6",
        observation(valueString="x", dataAbsentReason={"text": "lost"}),
        observation(dataAbsentReason={"text": "lost"}),
        "Observation",
    ),
    (
        "obs-7",
        observation(
            valueString="x",
            component=[
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                    "valueString": "y",
                }
            ],
        ),
        observation(
            component=[
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                    "valueString": "y",
                }
            ],
        ),
        "Observation",
    ),
    (
        "dom-2",
        patient(
            contained=[
                {**ORG, "contained": [{"resourceType": "Organization", "id": "x", "name": "n"}]}
            ],
            managingOrganization={"reference": "#o1"},
        ),
        patient(contained=[ORG], managingOrganization={"reference": "#o1"}),
        "Patient.contained[0]",
    ),
    (
        "dom-3",
        patient(contained=[ORG]),
        patient(contained=[ORG], managingOrganization={"reference": "#o1"}),
        "Patient.contained[0]",
    ),
    (
        "dom-4",
        patient(
            contained=[{**ORG, "meta": {"versionId": "3"}}],
            managingOrganization={"reference": "#o1"},
        ),
        patient(
            contained=[{**ORG, "meta": {"profile": ["http://x/y"]}}],
            managingOrganization={"reference": "#o1"},
        ),
        "Patient.contained[0]",
    ),
    (
        "dom-5",
        patient(
            contained=[
                {
                    **ORG,
                    "meta": {
                        "security": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                                "code": "R",
                            }
                        ]
                    },
                }
            ],
            managingOrganization={"reference": "#o1"},
        ),
        patient(contained=[ORG], managingOrganization={"reference": "#o1"}),
        "Patient.contained[0]",
    ),
    (
        "ces-1",
        {
            "resourceType": "CoverageEligibilityResponse",
            "status": "active",
            "purpose": ["benefits"],
            "patient": {"reference": "Patient/p1"},
            "created": "2026-01-02",
            "request": {"reference": "CoverageEligibilityRequest/r1"},
            "outcome": "complete",
            "insurer": {"reference": "Organization/o1"},
            "insurance": [
                {"coverage": {"reference": "Coverage/c1"}, "item": [{"description": "no category"}]}
            ],
        },
        {
            "resourceType": "CoverageEligibilityResponse",
            "status": "active",
            "purpose": ["benefits"],
            "patient": {"reference": "Patient/p1"},
            "created": "2026-01-02",
            "request": {"reference": "CoverageEligibilityRequest/r1"},
            "outcome": "complete",
            "insurer": {"reference": "Organization/o1"},
            "insurance": [
                {
                    "coverage": {"reference": "Coverage/c1"},
                    "item": [{"category": {"text": "medical"}}],
                }
            ],
        },
        "CoverageEligibilityResponse.insurance[0].item[0]",
    ),
    (
        "sqty-1",
        claim(
            item=[
                {
                    "sequence": 1,
                    "productOrService": {"text": "v"},
                    "quantity": {"value": 1, "comparator": "<"},
                }
            ]
        ),
        claim(item=[{"sequence": 1, "productOrService": {"text": "v"}, "quantity": {"value": 1}}]),
        "Claim.item[0].quantity",
    ),
    (
        "qty-3",
        encounter(length={"value": 30, "code": "min"}),
        encounter(length={"value": 30, "system": UCUM, "code": "min"}),
        "Encounter.length",
    ),
    (
        "ext-1",
        patient(extension=[{"url": "http://example.org/x"}]),
        patient(extension=[{"url": "http://example.org/x", "valueString": "y"}]),
        "Patient.extension[0]",
    ),
    (
        "con-4",
        condition(
            abatementDateTime="2026-01-01",
            clinicalStatus={
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "active",
                    }
                ]
            },
        ),
        condition(
            abatementDateTime="2026-01-01",
            clinicalStatus={
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "resolved",
                    }
                ]
            },
        ),
        "Condition",
    ),
    (
        "cpt-2",
        patient(telecom=[{"value": "555-1234"}]),
        patient(telecom=[{"system": "phone", "value": "555-1234"}]),
        "Patient.telecom[0]",
    ),
    (
        "inv-1",
        {
            "resourceType": "Task",
            "status": "ready",
            "intent": "order",
            "authoredOn": "2026-01-02",
            "lastModified": "2026-01-01",
        },
        {
            "resourceType": "Task",
            "status": "ready",
            "intent": "order",
            "authoredOn": "2026-01-02",
            "lastModified": "2026-01-02T08:00:00Z",
        },
        "Task",
    ),
]


@pytest.mark.parametrize(
    ("key", "failing", "passing", "location"), INVARIANTS, ids=[i[0] for i in INVARIANTS]
)
def test_each_invariant_fails_once_with_its_location_and_passes_when_kept(
    key, failing, passing, location
):
    found = resource_issues(failing)
    assert [(i.code, i.expression[0]) for i in found] == [("invariant", location)], found
    assert key in found[0].diagnostics
    assert issues_of(passing) == []


def test_a_resource_with_five_problems_gets_five_issues_in_one_answer():
    bad = patient(
        gender="bogus",
        birthDate="03/02/1980",
        nickname="Al",
        identifier=[{"use": "primary", "value": "1"}],
        telecom=[{"value": "555-1234"}],
    )
    with pytest.raises(FhirError) as caught:
        validate_resource(bad)
    found = sorted(i.expression[0] for i in caught.value.issues)
    assert found == [
        "Patient.birthDate",
        "Patient.gender",
        "Patient.identifier[0].use",
        "Patient.nickname",
        "Patient.telecom[0]",
    ]


def test_problems_in_contained_and_bundled_resources_are_found_with_their_path():
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": patient(gender="bogus")}, {"resource": encounter(status="done")}],
    }
    assert sorted(issues_of(bundle)) == [
        ("code-invalid", "Bundle.entry[0].resource.gender"),
        ("code-invalid", "Bundle.entry[1].resource.status"),
    ]
    org = {**ORG, "telecom": [{"system": "fax2", "value": "1"}]}
    contained = patient(contained=[org], managingOrganization={"reference": "#o1"})
    assert issues_of(contained) == [("code-invalid", "Patient.contained[0].telecom[0].system")]


def test_required_primitives_and_choice_types_are_enforced():
    missing = claim()
    del missing["status"]
    assert the_only_issue(missing) == ("required", "Claim.status")
    extended = claim()
    del extended["status"]
    extended["_status"] = {
        "extension": [{"url": "http://example.org/why", "valueString": "unknown"}]
    }
    assert issues_of(extended) == []
    two = observation(valueString="a", valueBoolean=True)
    assert the_only_issue(two) == ("structure", "Observation.value[x]")


# -- R4, not R4B ------------------------------------------------------------------------


def test_r4b_only_resource_types_are_not_r4():
    topic = {"resourceType": "SubscriptionTopic", "url": "http://x", "status": "active"}
    assert issues_of(topic) == [("structure", "resourceType")]


def test_r4_only_resource_types_validate_against_r4():
    product = {"resourceType": "MedicinalProduct", "name": [{"productName": "Aspirin"}]}
    assert issues_of(product) == []
    broken = {"resourceType": "MedicinalProduct", "name": [{"productName": ""}]}
    assert issues_of(broken) == [("value", "MedicinalProduct.name[0].productName")]


def test_elements_the_r4b_models_accept_but_r4_has_not_are_unknown():
    # fhir.resources' R4B models accept ``fhir_comments`` on every element; R4 has none.
    assert the_only_issue(patient(fhir_comments=["x"])) == ("structure", "Patient.fhir_comments")


def test_validation_leaves_the_resource_untouched():
    resource = claim(status="bogus")
    before = copy.deepcopy(resource)
    resource_issues(resource)
    assert resource == before


def test_extension_value_types_are_r4s_not_r4bs():
    # R4B added valueCodeableReference and valueRatioRange to Extension and dropped
    # valueMeta; every resource Billable serves carries extensions, so R4's list applies.
    url = "http://example.org/fhir/StructureDefinition/x"
    r4b_only = patient(
        extension=[{"url": url, "valueCodeableReference": {"concept": {"text": "x"}}}]
    )
    assert issues_of(r4b_only) == [
        ("structure", "Patient.extension[0].valueCodeableReference"),
        ("invariant", "Patient.extension[0]"),  # ext-1: so it has no value at all in R4
    ]
    r4_only = patient(extension=[{"url": url, "valueMeta": {"versionId": "1"}}])
    assert issues_of(r4_only) == []
