"""Plan benefits: what a member pays, read from the Coverage and its InsurancePlan.

``Coverage.costToBeneficiary`` says the common things (copays by visit type, a
coinsurance percentage, the deductible, the out-of-pocket maximum); everything else a
payer needs (family amounts, out-of-network terms, preventive care at no cost, services
the plan excludes, contracted providers, how allowed amounts are derived) comes from the
``InsurancePlan`` named by the Coverage's ``class`` of type ``plan``. docs/adjudication.md
has the full mapping. Values on the Coverage win over the plan's (they are the member's
own terms).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).with_name("data")
BENEFIT_CATEGORY = "https://billable.dev/fhir/CodeSystem/benefit-category"
CATEGORIES = (
    "office-visit",
    "specialist",
    "emergency",
    "urgent-care",
    "telehealth",
    "inpatient",
    "preventive",
    "other",
)
IN, OUT = "in-network", "out-of-network"
# Coverage.costToBeneficiary.type (http://terminology.hl7.org/CodeSystem/coverage-copay-type)
COPAY_TYPES = {
    "gpvisit": "office-visit",
    "spvisit": "specialist",
    "emergency": "emergency",
    "urgentcare": "urgent-care",
    "televisit": "telehealth",
    "inpthosp": "inpatient",
    "copay": "other",
}
ZERO = Decimal("0")


@dataclass(frozen=True, slots=True)
class CostShare:
    """The member's share for one service category and network tier."""

    copay: Decimal | None = None
    coinsurance: Decimal = ZERO  # a fraction: 0.2 is 20 %
    # None: the deductible applies unless the category has a copay (the common design).
    deductible_applies: bool | None = None

    @property
    def applies_deductible(self) -> bool:
        if self.deductible_applies is None:
            return self.copay is None
        return self.deductible_applies


@dataclass(frozen=True, slots=True)
class PlanBenefits:
    plan_id: str
    name: str
    deductible_individual: Decimal
    oop_individual: Decimal
    deductible_family: Decimal | None = None
    oop_family: Decimal | None = None
    # tier -> category -> cost share; category "other" is the default of a tier.
    cost_shares: dict[str, dict[str, CostShare]] = field(default_factory=dict)
    # Contracted provider references; None: every provider is in network.
    network: frozenset[str] | None = None
    # code (or prefix ending in "*") -> reason the plan does not cover it.
    excluded: dict[str, str] = field(default_factory=dict)
    allowed_percent_of_fee: dict[str, Decimal] = field(default_factory=dict)
    allowed_percent_of_charge: dict[str, Decimal] = field(default_factory=dict)
    locality: str = "00000-00"
    # (month, day) the plan year starts: InsurancePlan.period.start's, else 1 January.
    year_start: tuple[int, int] = (1, 1)
    # Days after the date of service a claim may be filed (CARC 29 after); 0: no limit.
    # The plan's "timely-filing" benefit, else Medicare's 12 months (42 CFR 424.44).
    timely_filing_days: int = 365

    def plan_year(self, day: date) -> tuple[date, date]:
        """First and last day of the plan year that contains ``day``."""
        month, dom = self.year_start
        start = date(day.year, month, dom)
        if start > day:
            start = date(day.year - 1, month, dom)
        end = date(start.year + 1, month, dom) - timedelta(days=1)
        return start, end

    def plan_year_label(self, day: date) -> str:
        """The accumulators' plan-year key: ``2026``, or ``2025-07-01`` off the calendar."""
        start, _ = self.plan_year(day)
        return str(start.year) if self.year_start == (1, 1) else start.isoformat()

    def cost_share(self, tier: str, category: str) -> CostShare:
        shares = self.cost_shares.get(tier) or self.cost_shares.get(IN, {})
        default = shares.get("other", CostShare(coinsurance=Decimal("0.2")))
        found = shares.get(category)
        if found is None:
            return default
        if found.copay is None and category != "preventive":
            return replace(found, coinsurance=found.coinsurance or default.coinsurance)
        return found

    def exclusion(self, code: str) -> str | None:
        if code in self.excluded:
            return self.excluded[code]
        for pattern, reason in self.excluded.items():
            if pattern.endswith("*") and code.startswith(pattern[:-1]):
                return reason
        return None

    def in_network(self, provider_ref: str | None) -> bool:
        return self.network is None or (provider_ref is not None and provider_ref in self.network)

    def fee_percent(self, tier: str) -> Decimal:
        return self.allowed_percent_of_fee.get(tier, Decimal(1))

    def charge_percent(self, tier: str) -> Decimal:
        return self.allowed_percent_of_charge.get(tier, Decimal("0.8"))


def _code(concept: Any) -> str | None:
    if not isinstance(concept, dict):
        return None
    for coding in concept.get("coding") or []:
        if coding.get("code"):
            return str(coding["code"])
    text = concept.get("text")
    return str(text) if text else None


def _quantity(value: Any) -> tuple[Decimal, bool] | None:
    """(amount, is_percent) of a Quantity or Money."""
    if not isinstance(value, dict) or value.get("value") is None:
        return None
    unit = str(value.get("code") or value.get("unit") or "")
    return Decimal(str(value["value"])), unit == "%"


@dataclass
class _Draft:
    shares: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def set(self, tier: str, category: str, key: str, value: Any) -> None:
        self.shares.setdefault(tier, {}).setdefault(category, {})[key] = value


def from_insurance_plan(plan: dict[str, Any]) -> PlanBenefits:
    """Benefits written in an InsurancePlan, as docs/adjudication.md describes."""
    amounts: dict[tuple[str, str, str], Decimal] = {}
    percents: dict[tuple[str, str], Decimal] = {}
    draft = _Draft()
    timely_filing = 365
    for plan_entry in plan.get("plan") or []:
        for specific in plan_entry.get("specificCost") or []:
            category = _code(specific.get("category")) or "plan"
            for benefit in specific.get("benefit") or []:
                kind = _code(benefit.get("type")) or ""
                for cost in benefit.get("cost") or []:
                    tier = _code(cost.get("applicability")) or IN
                    qualifiers = {_code(q) for q in cost.get("qualifiers") or []}
                    who = "family" if "family" in qualifiers else "individual"
                    quantity = _quantity(cost.get("value"))
                    if quantity is None:
                        continue
                    value, is_percent = quantity
                    if category == "plan" and kind == "timely-filing":
                        timely_filing = int(value)
                    elif category == "plan":
                        if kind in ("deductible", "out-of-pocket-maximum") and tier == IN:
                            amounts[(kind, who, tier)] = value
                        elif kind == "coinsurance":
                            draft.set(tier, "other", "coinsurance", value / 100)
                        elif kind.startswith("allowed-percent-of"):
                            percents[(kind, tier)] = value / 100
                    elif kind == "copay":
                        draft.set(tier, category, "copay", value)
                    elif kind == "coinsurance":
                        draft.set(
                            tier, category, "coinsurance", value / 100 if is_percent else value
                        )
                    elif kind == "deductible":
                        draft.set(tier, category, "deductible_applies", value != 0)
    network = frozenset(
        str(ref["reference"]) for ref in plan.get("network") or [] if ref.get("reference")
    )
    excluded: dict[str, str] = {}
    for coverage in plan.get("coverage") or []:
        if _code(coverage.get("type")) != "excluded":
            continue
        for benefit in coverage.get("benefit") or []:
            code = _code(benefit.get("type"))
            if code:
                excluded[code] = str(
                    benefit.get("requirement") or "Not covered by the member's plan"
                )
    shares = {
        tier: {cat: CostShare(**values) for cat, values in cats.items()}
        for tier, cats in draft.shares.items()
    }
    year_start = (1, 1)
    period_start = str((plan.get("period") or {}).get("start") or "")
    if len(period_start) >= 10:
        year_start = (int(period_start[5:7]), min(int(period_start[8:10]), 28))
    return PlanBenefits(
        timely_filing_days=timely_filing,
        year_start=year_start,
        plan_id=str(plan.get("id") or "unknown"),
        name=str(plan.get("name") or plan.get("id") or "plan"),
        deductible_individual=amounts.get(("deductible", "individual", IN), ZERO),
        deductible_family=amounts.get(("deductible", "family", IN)),
        oop_individual=amounts.get(("out-of-pocket-maximum", "individual", IN), Decimal(10**9)),
        oop_family=amounts.get(("out-of-pocket-maximum", "family", IN)),
        cost_shares=shares,
        network=network or None,
        excluded=excluded,
        allowed_percent_of_fee={
            t: v for (k, t), v in percents.items() if k == "allowed-percent-of-fee-schedule"
        },
        allowed_percent_of_charge={
            t: v for (k, t), v in percents.items() if k == "allowed-percent-of-charge"
        },
    )


def apply_coverage(benefits: PlanBenefits, coverage: dict[str, Any]) -> PlanBenefits:
    """The Coverage's own ``costToBeneficiary`` over the plan's terms (in network)."""
    result = benefits
    shares = {tier: dict(cats) for tier, cats in benefits.cost_shares.items()}
    in_net = shares.setdefault(IN, {})
    for cost in coverage.get("costToBeneficiary") or []:
        kind = _code(cost.get("type"))
        quantity = _quantity(cost.get("valueMoney") or cost.get("valueQuantity"))
        if kind is None or quantity is None:
            continue
        value, is_percent = quantity
        if kind == "deductible":
            result = replace(result, deductible_individual=value)
        elif kind == "maxoutofpocket":
            result = replace(result, oop_individual=value)
        elif kind == "copaypct":
            base = in_net.get("other", CostShare())
            in_net["other"] = replace(base, coinsurance=value / 100 if is_percent else value)
        elif kind in COPAY_TYPES:
            category = COPAY_TYPES[kind]
            base = in_net.get(category, CostShare())
            in_net[category] = replace(base, copay=value)
    return replace(result, cost_shares=shares)


@cache
def default_plan_resource() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA_DIR / "default-plan.json").read_text())
    return loaded


def default_benefits() -> PlanBenefits:
    return from_insurance_plan(default_plan_resource())
