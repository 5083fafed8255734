"""What the coding engine takes and gives: plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EDIT_SYSTEM = "https://billable.dev/fhir/CodeSystem/coding-edit"
ENGINE_NAME = "Billable coding engine"
ENGINE_VERSION = "0.1.0"

# OperationOutcome issue type per Billable edit code (the detail code says which rule).
ISSUE_TYPES = {
    "code-invalid": "code-invalid",
    "code-not-billable": "code-invalid",
    "code-not-effective": "code-invalid",
    "code-unknown": "code-invalid",
    "unmapped": "code-invalid",
    "age-sex-conflict": "business-rule",
    "manifestation-first": "business-rule",
    "no-diagnosis": "required",
    "no-lines": "required",
    "missing-provider": "required",
    "missing-patient-data": "required",
    "no-price": "not-found",
    "em-new-under-15": "business-rule",
    "em-below-time": "business-rule",
    "dx-from-problem-list": "business-rule",
    "dx-preventive-default": "informational",
    "map-supplement": "informational",
    "em-no-time": "incomplete",
    "em-no-rule": "not-supported",
    "ed-level-review": "business-rule",
    "ncci-removed": "business-rule",
    "ncci-review": "business-rule",
    "mue-capped": "business-rule",
    "medical-necessity": "business-rule",
    "dx-over-limit": "informational",
    "dx-uncertain-excluded": "informational",
    "dx-excluded": "informational",
    "not-reportable": "informational",
    "em-from-procedure": "informational",
    "self-pay": "informational",
    "table-out-of-date": "informational",
    "shipped-subset": "informational",
    "map-rule-unevaluated": "incomplete",
    "map-advice": "informational",
    # Fee schedule, MUE, add-on and PTP edits from the CMS tables (issue 14).
    "mue-dos-policy": "business-rule",
    "mue-dos-clinical": "business-rule",
    "addon-without-primary": "business-rule",
    "addon-primary-unlisted": "business-rule",
    "ncci-distinct-service": "informational",
    "fee-bundled": "business-rule",
    "fee-noncovered-medicare": "informational",
    "fee-invalid-medicare": "business-rule",
    "fee-quality-code": "informational",
    "carrier-priced": "incomplete",
    "price-illustrative": "informational",
    "price-charge-master": "informational",
    "price-pfs-stand-in": "informational",
    "revenue-default": "informational",
    "table-fallback": "informational",
    "pctc-modifier-invalid": "business-rule",
    "bilateral-modifier-invalid": "business-rule",
    "bilateral-not-allowed": "business-rule",
    "bilateral-150": "informational",
    "bilateral-each-side": "informational",
    "multiple-procedure": "informational",
    "assistant-priced": "informational",
    "assistant-documentation": "business-rule",
    "assistant-not-allowed": "business-rule",
    "co-surgeon-documentation": "business-rule",
    "co-surgeon-not-allowed": "business-rule",
    "team-documentation": "business-rule",
    "team-not-allowed": "business-rule",
    "team-surgery-priced-by-carrier": "incomplete",
    "timely-filing": "business-rule",
    "locality-unknown": "business-rule",
    # diagnosis conventions (mappings/coding/dx_conventions.py)
    "dx-combined": "informational",
    "dx-integral-symptom": "informational",
    "dx-reason-first": "informational",
    "bmi-without-weight-dx": "business-rule",
    "dx-history-missing": "business-rule",
    "dx-additional-code": "business-rule",
    "dx-laterality": "business-rule",
    # visit rules (mappings/coding/em.py)
    "em-status-by-organization": "informational",
    "payer-kind-assumed": "informational",
    "em-time-excludes-procedures": "informational",
    "em-time-includes-preventive": "business-rule",
    "medicare-preventive": "informational",
    "em-prolonged": "informational",
    "em-99211-with-drug-admin": "informational",
    "em-procedure-only": "business-rule",
    "em-decision-for-surgery": "informational",
    "vaccine-unmapped": "code-invalid",
    "screening-became-diagnostic": "informational",
    "facility-service": "informational",
    "ed-level-mdm": "informational",
    "professional-component": "informational",
    # a coder's decisions (mappings/coding/overrides.py)
    "coder-override": "informational",
    "override-stale": "business-rule",
    "coder-hold": "business-rule",
}


@dataclass(slots=True)
class Problem:
    severity: str  # error | warning | information
    code: str  # a key of ISSUE_TYPES
    message: str
    location: str  # FHIRPath into the Claim (or the source resource when not on the claim)

    def to_issue(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": ISSUE_TYPES.get(self.code, "processing"),
            "details": {"coding": [{"system": EDIT_SYSTEM, "code": self.code}]},
            "diagnostics": self.message,
            "expression": [self.location],
        }


@dataclass(slots=True)
class SourceData:
    """Everything one Encounter's claim is made from (the service gathers it)."""

    encounter: dict[str, Any]
    patient: dict[str, Any] | None
    conditions: list[dict[str, Any]] = field(default_factory=list)
    procedures: list[dict[str, Any]] = field(default_factory=list)
    coverages: list[dict[str, Any]] = field(default_factory=list)
    # A finished encounter with the same organization in the 3 years before (new vs est.).
    established: bool = False
    # The patient's other Conditions: used only when nothing links a diagnosis to the visit.
    problem_list: list[dict[str, Any]] | None = None
    # The patient's finished Encounters of the 3 years before (None: not gathered, then
    # ``established`` decides) and the PractitionerRoles of their practitioners and of
    # the rendering one: new vs established by physician and specialty (CPT).
    prior_encounters: list[dict[str, Any]] | None = None
    roles: list[dict[str, Any]] = field(default_factory=list)
    practitioners: list[dict[str, Any]] = field(default_factory=list)  # their identifiers
    # Completed Immunizations given at the encounter (vaccine product + administration).
    immunizations: list[dict[str, Any]] = field(default_factory=list)
    # The coders' decisions on this encounter's claim (``Basic`` resources, overrides.py).
    overrides: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CodingConfig:
    locality: str = "00000-00"
    charge_factor: float = 1.0
    currency: str = "USD"
    max_professional_diagnoses: int = 12
    max_pointers: int = 4
    # Automatic coding codes only encounters whose date of service is at most this many
    # days before today (Medicare's limit is 12 months, 42 CFR 424.44); 0 = no limit.
    # $generate-claim codes older ones too, with a warning "timely-filing".
    timely_filing_days: int = 0


@dataclass(slots=True)
class CodingResult:
    claim: dict[str, Any]
    problems: list[Problem]
    # (system, version) of every terminology table consulted; rule table versions.
    terminology_versions: set[tuple[str, str]]
    rule_versions: dict[str, str]

    @property
    def clean(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    def outcome(self) -> dict[str, Any]:
        issues = [p.to_issue() for p in self.problems]
        if not issues:
            issues = [
                {
                    "severity": "information",
                    "code": "informational",
                    "diagnostics": "The claim is clean: no edit applies",
                }
            ]
        return {"resourceType": "OperationOutcome", "issue": issues}
