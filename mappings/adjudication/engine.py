"""The adjudication arithmetic: pure functions, no store, no FHIR building.

Line by line: submitted → payer edits (a denied line is allowed 0 with a CARC) → allowed
(the lesser of the charge and the contracted rate or fee schedule) → deductible (what is
left of it for the plan year) → copay or coinsurance → patient share capped by what is
left of the out-of-pocket maximum → benefit paid. Balances carry from line to line, so a
deductible met half-way through a claim is met for the next line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from mappings.adjudication.benefits import IN, OUT, PlanBenefits
from mappings.adjudication.rules import (
    BILLING_SYSTEMS,
    FACILITY_POS,
    NCCI_BYPASS,
    PREVENTIVE_CODES,
    RateTable,
    category_of,
    necessity_problem,
)

ZERO = Decimal("0")
CENT = Decimal("0.01")

# CARC -> claim adjustment group: who carries a denied charge.
PATIENT_GROUP = {"1", "2", "3", "27", "204", "96"}


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(slots=True)
class Line:
    sequence: int
    system: str | None
    code: str | None
    modifiers: list[str]
    quantity: Decimal
    charge: Decimal
    day: date | None
    pos: str | None
    diagnoses: list[str]


@dataclass(slots=True)
class ClaimFacts:
    """What adjudication needs from a Claim, already resolved."""

    provider: str | None
    payers: list[str]
    specialist: bool
    lines: list[Line]
    institutional: bool = False
    # When the payer received the claim (Claim.created): timely filing is counted to it.
    received: date | None = None


@dataclass(slots=True)
class Balances:
    """Accumulated amounts for the plan year before this claim."""

    deductible_individual: Decimal = ZERO
    oop_individual: Decimal = ZERO
    deductible_family: Decimal = ZERO
    oop_family: Decimal = ZERO


@dataclass(slots=True)
class Denial:
    carc: str
    message: str

    @property
    def group(self) -> str:
        return "PR" if self.carc in PATIENT_GROUP else ("OA" if self.carc == "18" else "CO")


@dataclass(slots=True)
class LineResult:
    sequence: int
    submitted: Decimal
    allowed: Decimal = ZERO
    deductible: Decimal = ZERO
    copay: Decimal = ZERO
    coinsurance: Decimal = ZERO
    benefit: Decimal = ZERO
    noncovered: Decimal = ZERO
    allowed_units: Decimal = ZERO
    category: str = "other"
    denial: Denial | None = None
    price_source: str = ""
    # Out of network there is no contract: the provider may bill the member the rest.
    balance_bill: Decimal = ZERO

    @property
    def patient(self) -> Decimal:
        return self.deductible + self.copay + self.coinsurance

    @property
    def member_liability(self) -> Decimal:
        """What the member owes: their share, plus a denied charge the plan makes theirs."""
        owed = self.patient + self.balance_bill
        if self.denial is not None and self.denial.group == "PR":
            owed += self.submitted
        return owed

    @property
    def discount(self) -> Decimal:
        """The contractual reduction (CARC 45) the provider writes off."""
        if self.denial is not None:
            return ZERO
        return self.submitted - self.allowed - self.balance_bill


@dataclass(slots=True)
class Decision:
    lines: list[LineResult]
    in_network: bool
    deductible_applied: Decimal = ZERO
    oop_applied: Decimal = ZERO
    notes: list[str] = field(default_factory=list)

    def total(self, name: str) -> Decimal:
        return sum((getattr(line, name) for line in self.lines), ZERO)


def coverage_active(coverage: dict[str, Any], day: date | None) -> str | None:
    """Why ``coverage`` does not cover ``day``, or None."""
    status = coverage.get("status")
    if status != "active":
        return f"Coverage/{coverage.get('id')} is {status}, not active"
    if day is None:
        return None
    period = coverage.get("period") or {}
    start, end = period.get("start"), period.get("end")
    if start and day < date.fromisoformat(str(start)[:10]):
        return f"coverage starts {str(start)[:10]}, after the date of service {day}"
    if end and day > date.fromisoformat(str(end)[:10]):
        return f"coverage ended {str(end)[:10]}, before the date of service {day}"
    return None


def review(
    facts: ClaimFacts,
    coverage: dict[str, Any],
    benefits: PlanBenefits,
    terminology: Any,
    notes: list[str] | None = None,
) -> dict[int, Denial]:
    """The payer's edits: each denied line with its CARC and a readable message; what
    could not be checked goes to ``notes``."""
    notes = notes if notes is not None else []
    denials: dict[int, Denial] = {}
    for line in facts.lines:
        denial = timely_filing(line, facts.received, benefits.timely_filing_days)
        denial = denial or _line_denial(line, coverage, benefits, terminology, notes)
        if denial is not None:
            denials[line.sequence] = denial
    _mue(facts, denials, terminology)
    _ncci(facts, denials, terminology)
    return denials


def timely_filing(line: Line, received: date | None, limit: int) -> Denial | None:
    """CARC 29: the claim reached the payer more than ``limit`` days (the plan's timely
    filing limit; Medicare: 12 months, 42 CFR 424.44) after the date of service."""
    if not limit or received is None or line.day is None:
        return None
    late = (received - line.day).days
    if late <= limit:
        return None
    return Denial(
        "29",
        f"The time limit for filing has expired: the service on {line.day} was received"
        f" {received} ({late} days later; the plan allows {limit})",
    )


def _subset(terminology: Any, kind: str, day: date | None) -> bool:
    try:
        code_system, _ = terminology.code_system(kind, day)
    except Exception:  # no release covers the day: the nearest one was used
        try:
            code_system, _ = terminology.code_system(kind, None)
        except Exception:  # no release at all: nothing to call a subset
            return False
    return getattr(code_system, "content", "complete") == "fragment"


def _line_denial(
    line: Line,
    coverage: dict[str, Any],
    benefits: PlanBenefits,
    terminology: Any,
    notes: list[str],
) -> Denial | None:
    inactive = coverage_active(coverage, line.day)
    if inactive is not None:
        return Denial("27", f"Coverage not active on the date of service: {inactive}")
    kind = BILLING_SYSTEMS.get(line.system or "")
    if kind is None or not line.code:
        return Denial(
            "16",
            f"Claim lacks information: line {line.sequence} has no CPT or HCPCS code "
            f"({line.system or 'no system'} {line.code or ''})".rstrip(),
        )
    if line.day is None:
        return Denial("16", f"Claim lacks information: line {line.sequence} has no service date")
    result = terminology.validate_code(kind, line.code, line.day)
    if result.reason == "not-effective" and "version loaded is in force" in result.message:
        # No release of the code set covers the date at all: a gap in the payer's tables,
        # not an invalid code. Judge the code by the nearest release loaded instead.
        result = terminology.validate_code(kind, line.code, None)
    if not result.valid:
        if result.reason == "unknown-code" and _subset(terminology, kind, line.day):
            # Billable ships only part of CPT/HCPCS (licensing): a code missing from a
            # subset is not known to be invalid. Load the full release to check it.
            notes.append(
                f"Line {line.sequence}: {line.code} is not in the loaded {kind.upper()} subset;"
                " its validity was not checked (load the full release)"
            )
        else:
            return Denial("181", f"Invalid code on the date of service: {result.message}")
    excluded = benefits.exclusion(line.code)
    if excluded is not None:
        return Denial("204", f"Service not covered by the plan: {excluded}")
    # PFS status N is Medicare's non-covered list (X, E and I codes are paid under other
    # fee schedules or other codes, not denied); preventive services are a plan benefit.
    rvu = _rvu_status(terminology, line)
    if rvu == "N" and line.code not in PREVENTIVE_CODES:
        return Denial("96", f"Service not covered: {line.code} is a non-covered service")
    problem = necessity_problem(line.code, line.diagnoses)
    if problem is not None:
        return Denial("50", f"Not medically necessary: {problem}")
    return None


def _rvu_status(terminology: Any, line: Line) -> str | None:
    fee = terminology.fee(line.code or "", line.day)
    return fee.rvu.status if fee is not None else None


def _mue(facts: ClaimFacts, denials: dict[int, Denial], terminology: Any) -> None:
    """Units over the MUE: the whole line (MAI 1) or every line of the day (MAI 2/3)."""
    per_day: dict[tuple[str, date | None], list[Line]] = {}
    for line in facts.lines:
        if line.sequence not in denials and line.code:
            per_day.setdefault((line.code, line.day), []).append(line)
    for (code, day), lines in per_day.items():
        mue = terminology.mue(code, day)
        if mue is None or mue.units == 0:  # 0: not paid under the PFS, not a unit limit
            continue
        if mue.adjudication_indicator.startswith("1"):
            offenders = [line for line in lines if line.quantity > mue.units]
            units = max((line.quantity for line in offenders), default=ZERO)
        else:
            units = sum((line.quantity for line in lines), ZERO)
            offenders = lines if units > mue.units else []
        for line in offenders:
            denials[line.sequence] = Denial(
                "151",
                f"Units over the MUE: {units.normalize()} units of {code} on {day}, "
                f"at most {mue.units} ({mue.rationale})",
            )


def _ncci(facts: ClaimFacts, denials: dict[int, Denial], terminology: Any) -> None:
    """Column-two codes billed with their column-one code the same day are bundled."""
    live = [line for line in facts.lines if line.sequence not in denials and line.code]
    for line in live:
        for other in live:
            if other is line or other.day != line.day or other.sequence in denials:
                continue
            for edit in terminology.ncci_edits(line.code, other.code, line.day):
                if edit.column2 != line.code or edit.column1 != other.code:
                    continue
                if edit.modifier_indicator == "1" and NCCI_BYPASS & set(line.modifiers):
                    continue
                carc = "97" if edit.modifier_indicator == "0" else "236"
                denials[line.sequence] = Denial(
                    carc,
                    f"Bundled (NCCI): {line.code} is part of {other.code} on line "
                    f"{other.sequence} the same day ({edit.rationale}"
                    + ("" if carc == "97" else "; no modifier that allows it separately")
                    + ")",
                )
                break
            if line.sequence in denials:
                break


def allowed_amount(
    line: Line,
    facts: ClaimFacts,
    benefits: PlanBenefits,
    tier: str,
    terminology: Any,
    rates: RateTable,
) -> tuple[Decimal, str]:
    """The allowed amount of a line and where it came from."""
    assert line.code is not None and line.day is not None
    rate = rates.find(facts.payers, line.code, line.modifiers, line.day)
    if rate is not None:
        return money(min(line.charge, rate.amount * line.quantity)), "contracted rate"
    facility = facts.institutional or (line.pos in FACILITY_POS)
    modifier = next((m for m in line.modifiers if m in ("26", "TC")), "")
    fee = terminology.fee(line.code, line.day, benefits.locality, facility, modifier)
    if fee is not None and fee.amount > 0:
        unit = Decimal(str(fee.amount)) * benefits.fee_percent(tier)
        return money(min(line.charge, unit * line.quantity)), (
            f"fee schedule {fee.rvu_version} locality {fee.locality}"
        )
    return money(line.charge * benefits.charge_percent(tier)), "percent of charge (no fee listed)"


def adjudicate_lines(
    facts: ClaimFacts,
    denials: dict[int, Denial],
    benefits: PlanBenefits,
    balances: Balances,
    terminology: Any,
    rates: RateTable,
) -> Decision:
    """Allowed amounts and cost shares for every line, in sequence order."""
    in_network = benefits.in_network(facts.provider)
    tier = IN if in_network else OUT
    decision = Decision([], in_network)
    ded_ind, oop_ind = balances.deductible_individual, balances.oop_individual
    ded_fam, oop_fam = balances.deductible_family, balances.oop_family
    for line in sorted(facts.lines, key=lambda x: x.sequence):
        result = LineResult(line.sequence, money(line.charge))
        decision.lines.append(result)
        denial = denials.get(line.sequence)
        if denial is not None:
            result.denial = denial
            result.noncovered = result.submitted
            continue
        assert line.code is not None
        result.category = category_of(line.code, line.modifiers, line.pos, facts.specialist)
        result.allowed, result.price_source = allowed_amount(
            line, facts, benefits, tier, terminology, rates
        )
        result.allowed_units = line.quantity
        share = benefits.cost_share(tier, result.category)
        remaining_ded = benefits.deductible_individual - ded_ind
        if benefits.deductible_family is not None:
            remaining_ded = min(remaining_ded, benefits.deductible_family - ded_fam)
        remaining_oop = benefits.oop_individual - oop_ind
        if benefits.oop_family is not None:
            remaining_oop = min(remaining_oop, benefits.oop_family - oop_fam)
        remaining_ded = max(remaining_ded, ZERO)
        remaining_oop = max(remaining_oop, ZERO)
        left = result.allowed
        deductible = min(left, remaining_ded) if share.applies_deductible else ZERO
        left -= deductible
        copay = min(left, share.copay) if share.copay is not None else ZERO
        left -= copay
        coinsurance = money(left * share.coinsurance) if share.copay is None else ZERO
        # The out-of-pocket maximum caps the member's share; the cap takes coinsurance
        # first, then the copay, then the deductible (all three count towards it).
        excess = deductible + copay + coinsurance - remaining_oop
        if excess > 0:
            cut = min(excess, coinsurance)
            coinsurance -= cut
            excess -= cut
            cut = min(excess, copay)
            copay -= cut
            excess -= cut
            deductible -= min(excess, deductible)
            decision.notes.append(
                f"Line {line.sequence}: out-of-pocket maximum reached; the plan pays the rest"
            )
        result.deductible, result.copay, result.coinsurance = deductible, copay, coinsurance
        result.benefit = result.allowed - result.patient
        if not in_network:
            result.balance_bill = result.submitted - result.allowed
        ded_ind += deductible
        ded_fam += deductible
        oop_ind += result.patient
        oop_fam += result.patient
        decision.deductible_applied += deductible
        decision.oop_applied += result.patient
    return decision
