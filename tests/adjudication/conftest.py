"""Adjudication fixtures: a repository per backend, a test plan with round numbers.

The test plan (``InsurancePlan/test-plan``, payer ``Organization/acme``) is written so
that a payer analyst can check every figure by hand:

* deductible $500 individual / $1,000 family; out-of-pocket maximum $1,500 / $3,000;
* coinsurance 20 % in network; copays: office visit $30, specialist $60, emergency $200;
  preventive care at no cost (no deductible, no copay, no coinsurance);
* dental (D codes) excluded;
* contracted rates (allowed per unit) in ``RATES``.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from mappings.adjudication import AdjudicationConfig, adjudicate_claim, set_config
from mappings.adjudication.rules import Rate, RateTable
from server.repository import Repository, RequestContext
from server.storage.factory import create_store

CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
PAYER = "Organization/acme"
RATES = {
    "99213": "100",
    "99243": "200",
    "99281": "150",
    "99396": "180",
    "70551": "400",
    "71046": "80",
    "27447": "1600",
    "80053": "40",
    "80048": "30",
    "45378": "500",
    "45380": "600",
    "36415": "10",
    "93000": "50",
}
CTX = RequestContext(base_url="http://testserver/fhir")
_ids = itertools.count(1)


def usd(value: float) -> dict[str, Any]:
    return {"value": value, "currency": "USD"}


def money(value: float) -> dict[str, Any]:
    return {"value": value, "unit": "USD", "system": "urn:iso:std:iso:4217", "code": "USD"}


def percent(value: float) -> dict[str, Any]:
    return {"value": value, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}


def _cost(kind: str, value: dict[str, Any], who: str | None = None) -> dict[str, Any]:
    cost: dict[str, Any] = {
        "type": {"text": kind},
        "applicability": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/applicability",
                    "code": "in-network",
                }
            ]
        },
        "value": value,
    }
    if who:
        cost["qualifiers"] = [{"text": who}]
    return cost


def _category(code: str, *benefits: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "category": {
            "coding": [
                {"system": "https://billable.dev/fhir/CodeSystem/benefit-category", "code": code}
            ]
        },
        "benefit": [
            {"type": {"coding": [{"code": kind}]}, "cost": [_cost(kind, value)]}
            for kind, value in benefits
        ],
    }


def plan_resource() -> dict[str, Any]:
    plan_level = {
        "category": {"coding": [{"code": "plan"}]},
        "benefit": [
            {
                "type": {"coding": [{"code": "deductible"}]},
                "cost": [
                    _cost("deductible", money(500), "individual"),
                    _cost("deductible", money(1000), "family"),
                ],
            },
            {
                "type": {"coding": [{"code": "out-of-pocket-maximum"}]},
                "cost": [
                    _cost("oop", money(1500), "individual"),
                    _cost("oop", money(3000), "family"),
                ],
            },
            {"type": {"coding": [{"code": "coinsurance"}]}, "cost": [_cost("c", percent(20))]},
        ],
    }
    return {
        "resourceType": "InsurancePlan",
        "id": "test-plan",
        "status": "active",
        "name": "Test PPO",
        "plan": [
            {
                "specificCost": [
                    plan_level,
                    _category("office-visit", ("copay", money(30))),
                    _category("specialist", ("copay", money(60))),
                    _category("emergency", ("copay", money(200))),
                    _category(
                        "preventive",
                        ("copay", money(0)),
                        ("coinsurance", percent(0)),
                        ("deductible", money(0)),
                    ),
                ]
            }
        ],
        "coverage": [
            {
                "type": {"coding": [{"code": "excluded"}]},
                "benefit": [
                    {
                        "type": {"coding": [{"system": HCPCS, "code": "D*"}]},
                        "requirement": "Dental services are not covered by this medical plan",
                    }
                ],
            }
        ],
    }


def coverage(
    cid: str = "cov1",
    patient: str = "Patient/p1",
    subscriber: str = "Patient/p1",
    start: str = "2026-01-01",
    end: str = "2026-12-31",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "resourceType": "Coverage",
        "id": cid,
        "status": "active",
        "subscriber": {"reference": subscriber},
        "beneficiary": {"reference": patient},
        "period": {"start": start, "end": end},
        "payor": [{"reference": PAYER}],
        "class": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/coverage-class",
                            "code": "plan",
                        }
                    ]
                },
                "value": "test-plan",
            }
        ],
        **extra,
    }


def line(
    code: str,
    charge: float,
    day: str = "2026-03-02",
    qty: int = 1,
    system: str = CPT,
    modifiers: tuple[str, ...] = (),
    diagnoses: tuple[int, ...] = (1,),
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "productOrService": {"coding": [{"system": system, "code": code}]},
        "servicedDate": day,
        "locationCodeableConcept": {
            "coding": [
                {
                    "system": "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set",
                    "code": "11",
                }
            ]
        },
        "quantity": {"value": qty},
        "unitPrice": usd(charge / qty),
        "net": usd(charge),
        "diagnosisSequence": list(diagnoses),
    }
    if modifiers:
        item["modifier"] = [{"coding": [{"system": CPT, "code": m}]} for m in modifiers]
    return item


def claim(
    *items: dict[str, Any],
    patient: str = "Patient/p1",
    cov: str = "Coverage/cov1",
    diagnoses: tuple[str, ...] = ("R51.9",),
    provider: str = "Organization/clinic",
    **extra: Any,
) -> dict[str, Any]:
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
        "patient": {"reference": patient},
        "created": "2026-03-03",
        "provider": {"reference": provider},
        "priority": {"coding": [{"code": "normal"}]},
        "diagnosis": [
            {
                "sequence": i + 1,
                "diagnosisCodeableConcept": {"coding": [{"system": ICD10, "code": d}]},
            }
            for i, d in enumerate(diagnoses)
        ],
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": cov}}],
        "item": [{"sequence": i + 1, **item} for i, item in enumerate(items)],
        **extra,
    }


@pytest.fixture(autouse=True)
def config() -> Iterator[AdjudicationConfig]:
    rates = RateTable([Rate(PAYER, code, "", Decimal(v), None, None) for code, v in RATES.items()])
    cfg = AdjudicationConfig(rates=rates)
    set_config(cfg)
    yield cfg
    set_config(None)


@pytest.fixture(params=["sqlite", "mongo"])
async def repo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Repository]:
    if request.param == "mongo":
        url = request.getfixturevalue("mongo_db_uri")
    else:
        url = f"sqlite:///{tmp_path / 'billable.db'}"
    store = create_store(url)
    await store.open()
    repository = Repository(store)
    await repository.update(CTX, "InsurancePlan", "test-plan", plan_resource())
    await repository.update(CTX, "Coverage", "cov1", coverage())
    try:
        yield repository
    finally:
        await store.close()


@pytest.fixture
async def sqlite_repo(tmp_path: Path) -> AsyncIterator[Repository]:
    store = create_store(f"sqlite:///{tmp_path / 'billable.db'}")
    await store.open()
    repository = Repository(store)
    await repository.update(CTX, "InsurancePlan", "test-plan", plan_resource())
    await repository.update(CTX, "Coverage", "cov1", coverage())
    try:
        yield repository
    finally:
        await store.close()


async def submit(repo: Repository, resource: dict[str, Any]) -> dict[str, Any]:
    """Store the claim and adjudicate it; the ClaimResponse as a dict."""
    created = await repo.create(CTX, "Claim", resource)
    assert created.version is not None
    result = await adjudicate_claim(repo, CTX, created.version.id)
    assert result.claim_response.body is not None
    body: dict[str, Any] = orjson.loads(result.claim_response.body)
    return body


def amounts(adjudications: list[dict[str, Any]]) -> dict[str, float]:
    """category code → amount, for reading a line or the totals."""
    out = {}
    for entry in adjudications:
        code = entry["category"]["coding"][0]["code"]
        if "amount" in entry:
            out[code] = entry["amount"]["value"]
    return out


def line_amounts(response: dict[str, Any], sequence: int) -> dict[str, float]:
    item = next(i for i in response["item"] if i["itemSequence"] == sequence)
    return amounts(item["adjudication"])


def denial(response: dict[str, Any], sequence: int) -> tuple[str, str] | None:
    item = next(i for i in response["item"] if i["itemSequence"] == sequence)
    for entry in item["adjudication"]:
        if entry["category"]["coding"][0]["code"] == "adjustmentreason":
            return entry["reason"]["coding"][0]["code"], entry["reason"]["text"]
    return None
