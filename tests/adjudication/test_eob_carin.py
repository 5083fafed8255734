"""The EOB against the CARIN BB (STU 2) Professional NonClinician must-support list.

Checked element by element; elements the profile marks must-support that come from the
Claim (careTeam, diagnosis) are present because the test Claim carries them. The whole
profile (cardinalities, slices, bindings, invariants) is checked by HAPI FHIR's validator
in ``tests/conformance``.
"""

from __future__ import annotations

from typing import Any

import orjson

from mappings.adjudication import adjudicate_claim
from mappings.adjudication.resources import (
    C4BB_ADJUDICATION,
    C4BB_DISCRIMINATOR,
    C4BB_STATUS,
    HL7_ADJUDICATION,
    PROFILE_PROFESSIONAL,
)
from server.repository import Repository
from server.validation import validate_resource
from tests.adjudication.conftest import CTX, claim, line

# (path, what CARIN requires there); paths are dotted, lists are entered element-wise.
MUST_SUPPORT = [
    ("meta.profile", PROFILE_PROFESSIONAL),
    ("meta.lastUpdated", None),
    ("identifier.type.coding.code", "uc"),
    ("identifier.value", None),
    ("status", "active"),
    ("type.coding.code", "professional"),
    ("use", "claim"),
    ("patient.reference", "Patient/p1"),
    ("billablePeriod.start", "2026-03-02"),
    ("created", None),
    ("insurer.reference", "Organization/acme"),
    ("provider.reference", "Organization/clinic"),
    ("outcome", "complete"),
    ("payee.type.coding.code", "provider"),
    ("payee.party.reference", "Organization/clinic"),
    ("supportingInfo.category.coding.code", "clmrecvddate"),
    ("careTeam.provider.reference", "Practitioner/dr1"),
    ("careTeam.role.coding.code", "performing"),
    ("diagnosis.diagnosisCodeableConcept.coding.code", "R51.9"),
    ("diagnosis.sequence", 1),
    ("diagnosis.type.coding.code", "principal"),
    ("insurance.focal", True),
    ("insurance.coverage.reference", "Coverage/cov1"),
    ("item.sequence", 1),
    ("item.diagnosisSequence", 1),
    ("item.productOrService.coding.code", "99213"),
    ("item.modifier.coding.code", "25"),
    ("item.servicedDate", "2026-03-02"),
    ("item.locationCodeableConcept.coding.code", "11"),
    ("item.quantity.value", 1),
    ("item.adjudication.category.coding.code", "submitted"),
    ("item.adjudication.category.coding.code", "eligible"),
    ("item.adjudication.category.coding.code", "deductible"),
    ("item.adjudication.category.coding.code", "copay"),
    ("item.adjudication.category.coding.code", "coinsurance"),
    ("item.adjudication.category.coding.code", "benefit"),
    ("item.adjudication.category.coding.code", "paidbypatient"),
    ("item.adjudication.category.coding.code", "paidtoprovider"),
    ("item.adjudication.category.coding.code", "noncovered"),
    ("item.adjudication.category.coding.code", "adjustmentreason"),
    ("item.adjudication.category.coding.code", "allowedunits"),
    ("item.adjudication.category.coding.code", "benefitpaymentstatus"),
    ("item.adjudication.reason.coding.code", "innetwork"),
    ("item.adjudication.reason.coding.code", "151"),
    ("total.category.coding.code", "submitted"),
    ("total.category.coding.code", "benefit"),
    ("adjudication.category.coding.code", "billingnetworkstatus"),
    ("adjudication.reason.coding.code", "innetwork"),
    ("payment.type.coding.code", "partiallypaid"),  # 36415 x3 is denied (MUE)
    ("payment.date", None),
    ("payment.amount.value", 70.0),
    ("processNote.text", None),
]


def values(node: Any, path: str) -> list[Any]:
    """Every value at ``path`` (FHIRPath-like: lists are flattened)."""
    current = [node]
    for part in path.split("."):
        nxt: list[Any] = []
        for value in current:
            found = value.get(part) if isinstance(value, dict) else None
            if isinstance(found, list):
                nxt.extend(found)
            elif found is not None:
                nxt.append(found)
        current = nxt
    return current


async def _eob(repo: Repository) -> dict[str, Any]:
    resource = claim(
        line("99213", 150, modifiers=("25",)),
        line("36415", 30, qty=3),
        careTeam=[
            {
                "sequence": 1,
                "provider": {"reference": "Practitioner/dr1"},
                "role": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/claimcareteamrole",
                            "code": "performing",
                        }
                    ]
                },
            }
        ],
    )
    created = await repo.create(CTX, "Claim", resource)
    assert created.version is not None
    result = await adjudicate_claim(repo, CTX, created.version.id)
    assert result.explanation_of_benefit is not None
    eob_version = await repo.read(CTX, "ExplanationOfBenefit", result.explanation_of_benefit.id)
    assert eob_version.body is not None
    eob: dict[str, Any] = orjson.loads(eob_version.body)
    return eob


async def test_eob_carries_every_must_support_element(repo: Repository) -> None:
    eob = await _eob(repo)
    validate_resource(eob)  # a valid R4 ExplanationOfBenefit
    missing = []
    for path, expected in MUST_SUPPORT:
        found = values(eob, path)
        if not found or (expected is not None and expected not in found):
            missing.append(f"{path} = {expected!r} (found {found!r})")
    assert not missing, "\n".join(missing)


async def test_eob_adjudication_slices_use_carin_systems(repo: Repository) -> None:
    eob = await _eob(repo)
    systems = {
        c["code"]: c["system"]
        for item in eob["item"]
        for a in item["adjudication"]
        for c in a["category"]["coding"]
    }
    assert systems["submitted"] == HL7_ADJUDICATION
    assert systems["eligible"] == HL7_ADJUDICATION
    assert systems["coinsurance"] == C4BB_ADJUDICATION
    assert systems["paidbypatient"] == C4BB_ADJUDICATION
    assert systems["adjustmentreason"] == C4BB_DISCRIMINATOR
    assert systems["allowedunits"] == C4BB_DISCRIMINATOR
    assert systems["benefitpaymentstatus"] == C4BB_DISCRIMINATOR
    statuses = [
        a["reason"]["coding"][0]
        for item in eob["item"]
        for a in item["adjudication"]
        if a["category"]["coding"][0]["code"] == "benefitpaymentstatus"
    ]
    assert len(statuses) == len(eob["item"])  # the slice is 1..1 on every line
    assert all(s["system"] == C4BB_STATUS and s["code"] == "innetwork" for s in statuses)
    # Every amount-type adjudication has an amount; the denial reason carries its CARC.
    for item in eob["item"]:
        for entry in item["adjudication"]:
            code = entry["category"]["coding"][0]["code"]
            if code == "adjustmentreason":
                assert entry["reason"]["coding"][0]["system"].endswith(
                    "claim-adjustment-reason-codes"
                )
                assert entry["reason"]["text"]
            elif code == "allowedunits":
                assert "value" in entry
            elif code != "benefitpaymentstatus":
                assert entry["amount"]["currency"] == "USD"


async def test_claim_response_is_a_valid_r4_resource_linked_to_the_claim(
    repo: Repository,
) -> None:
    eob = await _eob(repo)
    reference = eob["claimResponse"]["reference"]
    response = await repo.read(CTX, "ClaimResponse", reference.split("/")[1])
    assert response.body is not None
    body = orjson.loads(response.body)
    validate_resource(body)
    assert body["request"] == eob["claim"]
    assert body["outcome"] == "complete"
    assert body["payment"]["amount"]["value"] == eob["payment"]["amount"]["value"] == 70
