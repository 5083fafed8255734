"""CoverageEligibilityRequest → CoverageEligibilityResponse: what a member's app shows.

For each Coverage asked about: whether it is in force on the date asked (``inforce``),
the benefit period, and benefits with allowed and used amounts: deductible and
out-of-pocket maximum (individual, and family when the plan has family amounts, used
amounts from the same accumulators adjudication updates), the coinsurance, and the copay
of each service category.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from mappings.adjudication.benefits import CATEGORIES, IN, OUT, PlanBenefits
from mappings.adjudication.engine import coverage_active
from mappings.adjudication.service import (
    AdjudicationConfig,
    accumulated,
    accumulator_keys,
    benefits_of,
    get_config,
    read_optional,
)
from server.repository import Repository, RequestContext

BENEFIT_TYPE = "http://terminology.hl7.org/CodeSystem/benefit-type"
BILLABLE_BENEFIT_TYPE = "https://billable.dev/fhir/CodeSystem/benefit-type"
BENEFIT_CATEGORY = "https://billable.dev/fhir/CodeSystem/benefit-category"
BENEFIT_UNIT = "http://terminology.hl7.org/CodeSystem/benefit-unit"
BENEFIT_TERM = "http://terminology.hl7.org/CodeSystem/benefit-term"
NETWORK = "http://terminology.hl7.org/CodeSystem/benefit-network"


def _usd(value: Decimal) -> dict[str, Any]:
    return {"value": float(value), "currency": "USD"}


def _cc(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def _reference_id(ref: dict[str, Any] | None) -> str | None:
    text = (ref or {}).get("reference")
    if not isinstance(text, str) or "Coverage/" not in text:
        return None
    return text.split("Coverage/")[-1].split("/")[0]


async def _limits(
    repo: Repository, coverage: dict[str, Any], benefits: PlanBenefits, day: date
) -> list[dict[str, Any]]:
    keys = accumulator_keys(coverage, benefits, day)
    items = []
    for unit, key in keys.items():
        deductible_met, oop_met = await accumulated(repo, key)
        deductible = (
            benefits.deductible_individual if unit == "individual" else benefits.deductible_family
        )
        oop = benefits.oop_individual if unit == "individual" else benefits.oop_family
        benefit = []
        if deductible is not None:
            benefit.append(
                {
                    "type": _cc(BENEFIT_TYPE, "deductible", "Deductible"),
                    "allowedMoney": _usd(deductible),
                    "usedMoney": _usd(deductible_met),
                }
            )
        if oop is not None:
            benefit.append(
                {
                    "type": _cc(BILLABLE_BENEFIT_TYPE, "out-of-pocket-maximum", "Out-of-pocket"),
                    "allowedMoney": _usd(oop),
                    "usedMoney": _usd(oop_met),
                }
            )
        items.append(
            {
                "category": _cc(BENEFIT_CATEGORY, "plan", "Health benefit plan"),
                "network": _cc(NETWORK, "in", "In Network"),
                "unit": _cc(BENEFIT_UNIT, unit, unit.capitalize()),
                "term": _cc(BENEFIT_TERM, "annual", "Annual"),
                "benefit": benefit,
            }
        )
    return items


def _cost_shares(benefits: PlanBenefits) -> list[dict[str, Any]]:
    items = []
    for tier, network in ((IN, "in"), (OUT, "out")):
        if tier not in benefits.cost_shares:
            continue
        for category in CATEGORIES:
            share = benefits.cost_share(tier, category)
            benefit: list[dict[str, Any]] = []
            if share.copay is not None:
                benefit.append(
                    {
                        "type": _cc(BENEFIT_TYPE, "copay", "Copayment"),
                        "allowedMoney": _usd(share.copay),
                    }
                )
            else:
                percent = (share.coinsurance * 100).normalize()
                benefit.append(
                    {
                        "type": _cc(BILLABLE_BENEFIT_TYPE, "coinsurance", "Coinsurance"),
                        "allowedString": f"{percent:f}%",
                    }
                )
            description = (
                "deductible applies" if share.applies_deductible else "deductible does not apply"
            )
            items.append(
                {
                    "category": _cc(BENEFIT_CATEGORY, category),
                    "network": _cc(NETWORK, network),
                    "unit": _cc(BENEFIT_UNIT, "individual", "Individual"),
                    "term": _cc(BENEFIT_TERM, "annual", "Annual"),
                    "description": description,
                    "benefit": benefit,
                }
            )
    return items


async def eligibility_response(
    repo: Repository,
    ctx: RequestContext,
    request: dict[str, Any],
    request_ref: str,
    config: AdjudicationConfig | None = None,
) -> dict[str, Any]:
    """The CoverageEligibilityResponse answering ``request`` (not stored here)."""
    config = config or get_config()
    now = datetime.now(UTC)
    day = None
    if request.get("servicedDate"):
        day = date.fromisoformat(str(request["servicedDate"])[:10])
    elif (request.get("servicedPeriod") or {}).get("start"):
        day = date.fromisoformat(str(request["servicedPeriod"]["start"])[:10])
    day = day or now.date()
    insurance = []
    errors = []
    insurer = request.get("insurer")
    for entry in request.get("insurance") or []:
        coverage = await read_optional(repo, ctx, "Coverage", _reference_id(entry.get("coverage")))
        if coverage is None:
            errors.append(f"Coverage {entry.get('coverage', {}).get('reference')} is not known")
            continue
        insurer = insurer or (coverage.get("payor") or [None])[0]
        benefits = await benefits_of(repo, ctx, coverage, config)
        inactive = coverage_active(coverage, day)
        items = await _limits(repo, coverage, benefits, day) + _cost_shares(benefits)
        year_start, year_end = benefits.plan_year(day)
        period = {"start": year_start.isoformat(), "end": year_end.isoformat()}
        insurance.append(
            {
                "coverage": entry["coverage"],
                "inforce": inactive is None,
                "benefitPeriod": period,
                "item": items,
            }
        )
    response: dict[str, Any] = {
        "resourceType": "CoverageEligibilityResponse",
        "status": "active",
        "purpose": request.get("purpose") or ["benefits"],
        "patient": request["patient"],
        "servicedDate": day.isoformat(),
        "created": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "request": {"reference": request_ref},
        "outcome": "complete" if not errors else ("partial" if insurance else "error"),
        "insurer": insurer or {"display": "unknown payer"},
    }
    if insurance:
        response["insurance"] = insurance
    if errors:
        response["disposition"] = "; ".join(errors)
        response["error"] = [
            {
                "code": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/adjudication-error",
                            "code": "a001",
                        }
                    ],
                    "text": e,
                }
            }
            for e in errors
        ]
    return response
