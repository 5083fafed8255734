"""Billable's own code systems, published in the terminology catalog.

Billable's resources carry a few codes of its own: the coding engine's edit codes
(OperationOutcome ``details``), the coders' Task codes, the payer's benefit categories and
benefit types, and the audit trail's subtypes for requests that are no FHIR interaction.
A client (or a validator) that meets ``https://billable.dev/fhir/CodeSystem/...`` can read
the code system there, as it can read ICD-10-CM's; ``tests/conformance`` checks that every
code the produced corpus carries is a concept of the catalog.
"""

from __future__ import annotations

from typing import Any

BASE = "https://billable.dev/fhir/CodeSystem"
# AuditEvent.subtype for what is no FHIR interaction (server.audit.chain): code -> display
AUDIT_SUBTYPE = f"{BASE}/audit-subtype"
AUDIT_SUBTYPES = {
    "oauth-authorize": "OAuth authorization endpoint",
    "oauth-login": "OAuth sign-in form",
    "oauth-pick": "OAuth patient picker",
    "oauth-token": "OAuth token endpoint",
    "oauth-revoke": "OAuth token revocation endpoint",
    "oauth-introspect": "OAuth token introspection endpoint",
    "oauth-jwks": "OAuth signing keys (JWKS)",
    "oauth-openid-configuration": "OpenID Connect discovery document",
    "other": "Another request",
}
VERSION = "2026.1"
DATE = "2026-11-27"
PUBLISHER = "Billable"

# code -> (display, definition)
CODING_EDITS: dict[str, tuple[str, str]] = {
    "code-invalid": ("Code invalid", "A code on the claim is not valid in its code system."),
    "code-not-billable": (
        "Code not billable",
        "An ICD-10-CM category or subcategory that has subdivisions: code to the highest"
        " specificity (ICD-10-CM Guidelines I.B.2).",
    ),
    "code-not-effective": (
        "Code not in force",
        "No version of the code system in force on the date of service has the code.",
    ),
    "code-unknown": ("Code unknown", "The code is in no loaded version of its code system."),
    "unmapped": ("No mapping", "A clinical code has no billing code in the shipped maps."),
    "age-sex-conflict": (
        "Age or sex conflict",
        "The code is limited to an age range or sex the patient is not in (CMS MCE edits).",
    ),
    "manifestation-first": (
        "Manifestation sequenced first",
        "A manifestation code cannot be the first-listed diagnosis (ICD-10-CM I.A.13).",
    ),
    "no-diagnosis": ("No diagnosis", "The claim has no diagnosis to support its lines."),
    "no-lines": ("No billable line", "The claim has no line to bill; code it by hand."),
    "missing-provider": ("No billing provider", "The Encounter names no billing provider."),
    "missing-patient-data": (
        "Patient data missing",
        "A patient element payers require (birth date, sex) is missing.",
    ),
    "no-price": ("No price", "The line's code has no fee schedule or charge master price."),
    "em-new-under-15": (
        "New-patient visit under 15 minutes",
        "Below the lowest new-patient office E/M time (CPT 2021 E/M guidelines).",
    ),
    "em-below-time": ("E/M below time", "The visit time is below the lowest E/M level."),
    "dx-from-problem-list": (
        "Diagnosis from the problem list",
        "A diagnosis was taken from the active problem list, not the encounter.",
    ),
    "dx-preventive-default": (
        "Default preventive diagnosis",
        "The routine examination Z code was added for a preventive visit.",
    ),
    "map-supplement": (
        "Mapped by the supplement table",
        "The clinical code was mapped by Billable's curated supplement, not the shipped map.",
    ),
    "em-no-time": (
        "No visit time",
        "The visit is levelled by time, but the Encounter has no length or complete period.",
    ),
    "em-no-rule": ("No E/M rule", "No E/M rule covers the encounter class."),
    "ed-level-review": ("ED level to review", "The emergency department level needs review."),
    "ncci-removed": (
        "NCCI pair removed",
        "A line was removed by an NCCI procedure-to-procedure edit.",
    ),
    "ncci-review": ("NCCI pair to review", "An NCCI edit allows a modifier: review the pair."),
    "mue-capped": ("MUE capped", "Units were capped at the NCCI medically unlikely edit value."),
    "medical-necessity": (
        "Medical necessity",
        "No diagnosis on the claim supports the line (NCD/LCD medical necessity).",
    ),
    "dx-over-limit": (
        "Too many diagnoses",
        "A professional claim carries at most 12 diagnoses; the others were not reported.",
    ),
    "dx-uncertain-excluded": (
        "Uncertain diagnosis excluded",
        "Uncertain diagnoses are not coded on outpatient claims (ICD-10-CM IV.H).",
    ),
    "dx-excluded": ("Diagnosis excluded", "A diagnosis was left off by an Excludes1 note."),
    "not-reportable": ("Not reportable", "The clinical code is not reported on a claim."),
    "em-from-procedure": (
        "E/M from a procedure",
        "The E/M level was taken from a procedure the encounter recorded.",
    ),
    "self-pay": ("Self-pay", "No Coverage of the patient is active on the date of service."),
    "table-out-of-date": (
        "Table out of date",
        "No version of a table is in force on the date of service; the newest was used.",
    ),
    "shipped-subset": (
        "Checked against the shipped subset",
        "The code was checked against Billable's shipped subset, not a licensed release.",
    ),
    "map-rule-unevaluated": (
        "Map rule not evaluated",
        "A conditional map target could not be evaluated with the data at hand.",
    ),
    "map-advice": ("Map advice", "The map carries advice for the coder."),
    "revenue-default": (
        "Revenue code defaulted",
        "The institutional line fell in no revenue center and was billed under 0510.",
    ),
    "addon-primary-unlisted": (
        "Add-on primary not listed",
        "An add-on code (type 2/3 in the NCCI AOC file) has none of its CMS primary codes.",
    ),
    "addon-without-primary": (
        "Add-on without its primary",
        "A type 1 add-on code has none of its primary codes on the same date (NCCI AOC).",
    ),
    "assistant-documentation": (
        "Assistant needs documentation",
        "The PFS assistant-at-surgery indicator 0 asks for documentation of medical necessity.",
    ),
    "assistant-not-allowed": (
        "Assistant not allowed",
        "The PFS assistant-at-surgery indicator 1 forbids modifiers 80/81/82/AS.",
    ),
    "assistant-priced": (
        "Assistant priced",
        "An assistant-at-surgery line is priced at the PFS share for assistants.",
    ),
    "bilateral-150": (
        "Bilateral at 150%",
        "PFS bilateral indicator 1: modifier 50 prices the line at 150%.",
    ),
    "bilateral-each-side": (
        "Bilateral each side",
        "PFS bilateral indicator 3: each side is priced at 100%.",
    ),
    "bilateral-modifier-invalid": (
        "Bilateral modifier invalid",
        "PFS bilateral indicator 2: the code is already bilateral; 50 or LT+RT is an error.",
    ),
    "bilateral-not-allowed": (
        "Bilateral not allowed",
        "PFS bilateral indicator 0: modifier 50 does not apply to the code.",
    ),
    "carrier-priced": (
        "Carrier priced",
        "PFS status C: the MAC prices the code; needs the user's charge master.",
    ),
    "co-surgeon-documentation": (
        "Co-surgeon needs documentation",
        "The PFS co-surgeon indicator asks for documentation with modifier 62.",
    ),
    "co-surgeon-not-allowed": (
        "Co-surgeon not allowed",
        "The PFS co-surgeon indicator forbids modifier 62 for the code.",
    ),
    "fee-bundled": (
        "Bundled service",
        "PFS status B: the service is bundled and not separately payable.",
    ),
    "fee-invalid-medicare": (
        "Not valid for Medicare",
        "PFS status I: not valid for Medicare purposes.",
    ),
    "fee-noncovered-medicare": (
        "Not covered by Medicare",
        "PFS status N: a service Medicare does not cover.",
    ),
    "fee-quality-code": (
        "Quality code",
        "A CPT Category II or quality-reporting code, billed at 0.",
    ),
    "locality-unknown": (
        "Locality unknown",
        "The configured PFS locality is not in the locality file; the national GPCIs were used.",
    ),
    "mue-dos-clinical": (
        "MUE per day (clinical)",
        "MUE adjudication indicator 3: units per day over the limit; review.",
    ),
    "mue-dos-policy": (
        "MUE per day (policy)",
        "MUE adjudication indicator 2: units per date of service over an absolute limit.",
    ),
    "multiple-procedure": (
        "Multiple procedure",
        "PFS multiple-procedure indicator: modifier 51 and the 100/50/50% ranking apply.",
    ),
    "ncci-distinct-service": (
        "NCCI pair needs a modifier",
        "An NCCI PTP pair with modifier indicator 1 and no distinct-service modifier: held.",
    ),
    "pctc-modifier-invalid": (
        "PC/TC modifier invalid",
        "Modifier 26 or TC on a code whose PFS PC/TC indicator does not split.",
    ),
    "price-charge-master": (
        "Priced from the charge master",
        "The line was priced from the user's charge master.",
    ),
    "price-illustrative": (
        "Illustrative price",
        "The line was priced from Billable's illustrative charge master, not a CMS table.",
    ),
    "price-pfs-stand-in": (
        "PFS price as a stand-in",
        "A facility line with no charge-master row was priced from the PFS as a stand-in.",
    ),
    "table-fallback": (
        "Table outside its window",
        "A CMS release answered for a date outside CMS's own window for it.",
    ),
    "team-documentation": (
        "Team surgery needs documentation",
        "The PFS team-surgery indicator asks for documentation with modifier 66.",
    ),
    "team-not-allowed": (
        "Team surgery not allowed",
        "The PFS team-surgery indicator forbids modifier 66 for the code.",
    ),
    "team-surgery-priced-by-carrier": (
        "Team surgery priced by the carrier",
        "Team surgery (modifier 66) is priced by the MAC.",
    ),
    "timely-filing": (
        "Past the filing window",
        "The date of service is older than the timely-filing window.",
    ),
    "bmi-without-weight-dx": (
        "BMI without a weight diagnosis",
        "Z68 is reported only with an associated weight diagnosis (ICD-10-CM I.B.14).",
    ),
    "dx-additional-code": (
        "Additional code needed",
        "The tabular asks for an additional code that the claim lacks.",
    ),
    "dx-combined": (
        "Combination code",
        "Two conditions were reported with one combination code (ICD-10-CM I.A.15, I.B.9).",
    ),
    "dx-history-missing": (
        "History code missing",
        "A code the tabular pairs with the diagnosis (history, status) is missing.",
    ),
    "dx-integral-symptom": (
        "Integral symptom dropped",
        "A symptom routine to a definitive diagnosis is not coded (ICD-10-CM I.B.5).",
    ),
    "dx-laterality": (
        "Laterality or 7th character",
        "The code needs laterality or a 7th character (ICD-10-CM I.B.13, I.A.5).",
    ),
    "dx-reason-first": (
        "Encounter reason first",
        "The reason for the encounter was sequenced first (ICD-10-CM IV, I.C.21).",
    ),
    "ed-level-mdm": (
        "ED level by MDM",
        "The ED level was set by medical decision making (CPT 2023 E/M guidelines).",
    ),
    "em-99211-with-drug-admin": (
        "No 99211 with drug administration",
        "99211 is not billed with drug administration (CMS, NCCI).",
    ),
    "em-decision-for-surgery": (
        "Decision for surgery",
        "The E/M the day of or before a 90-day global surgery takes modifier 57.",
    ),
    "em-procedure-only": (
        "Procedure-only visit",
        "No E/M: the visit was for a minor procedure (CMS global surgery policy).",
    ),
    "em-prolonged": (
        "Prolonged service",
        "Prolonged time was added per payer (99417 or G2212).",
    ),
    "em-status-by-organization": (
        "New or established by organization",
        "The specialty was unknown: new vs established was decided by the organization.",
    ),
    "em-time-excludes-procedures": (
        "Time net of procedures",
        "Time of separately reported services was excluded from the E/M time.",
    ),
    "em-time-includes-preventive": (
        "Time may include preventive",
        "The preventive service's time cannot be separated from the problem E/M.",
    ),
    "facility-service": (
        "Facility service",
        "A service of facility staff belongs on the facility's claim.",
    ),
    "medicare-preventive": (
        "Medicare preventive code",
        "Medicare's G0402/G0438/G0439 replaced the CPT preventive code.",
    ),
    "payer-kind-assumed": (
        "Payer kind assumed",
        "The Coverage names no known payer kind: commercial rules applied.",
    ),
    "professional-component": (
        "Professional component",
        "In a facility only the professional component is billed (26 or interpretation code).",
    ),
    "screening-became-diagnostic": (
        "Screening became diagnostic",
        "A screening turned diagnostic: Z12 first, the finding second, PT or 33.",
    ),
    "vaccine-unmapped": (
        "Vaccine not mapped",
        "The Immunization's CVX code has no CPT/HCPCS product code in the table.",
    ),
    # a coder's decisions (mappings/coding/overrides.py, docs/coder-app.md)
    "coder-override": (
        "Coder decision applied",
        "A coder's recorded decision (a Basic claim-override resource: who, when, why) was"
        " applied to the claim when it was generated.",
    ),
    "override-stale": (
        "Coder decision no longer fits",
        "A coder's recorded decision names a diagnosis or line the claim no longer has (the"
        " encounter changed): the claim returns to the queue until the coder withdraws or"
        " redoes it.",
    ),
    "coder-hold": (
        "Coder decisions not released",
        "Coder decisions were recorded after the last release: the claim stays a draft until"
        " a coder releases it.",
    ),
}

TASK_CODES: dict[str, tuple[str, str]] = {
    "review-claim": (
        "Review claim",
        "Review a draft claim that the coding engine could not finish.",
    ),
    "claim-generation-failed": (
        "Claim generation failed",
        "The coding engine could not generate the encounter's claim.",
    ),
}

BENEFIT_CATEGORIES: dict[str, tuple[str, str]] = {
    "plan": ("Health benefit plan", "The plan as a whole (deductible, out-of-pocket)."),
    "office-visit": ("Office visit", "Primary care office visits."),
    "specialist": ("Specialist visit", "Specialist office visits."),
    "emergency": ("Emergency", "Emergency department services."),
    "urgent-care": ("Urgent care", "Urgent care centre services."),
    "telehealth": ("Telehealth", "Services delivered by telehealth."),
    "inpatient": ("Inpatient", "Inpatient hospital services."),
    "preventive": ("Preventive care", "Preventive services (no cost share in network)."),
    "other": ("Other services", "Services in no other category."),
    "excluded": ("Excluded service", "A service the plan does not cover."),
}

BENEFIT_TYPES: dict[str, tuple[str, str]] = {
    "out-of-pocket-maximum": ("Out-of-pocket maximum", "The plan's out-of-pocket limit."),
    "coinsurance": ("Coinsurance", "The member's share of the allowed amount, in percent."),
}

AUDIT_DEFINITIONS = {code: (display, display + ".") for code, display in AUDIT_SUBTYPES.items()}

# (id, url, name, title, description, concepts)
SYSTEMS: tuple[tuple[str, str, str, str, str, dict[str, tuple[str, str]]], ...] = (
    (
        "billable-coding-edit",
        f"{BASE}/coding-edit",
        "BillableCodingEdit",
        "Billable coding engine edits",
        "The rule behind each issue of the coding engine's OperationOutcome.",
        CODING_EDITS,
    ),
    (
        "billable-task-code",
        f"{BASE}/task-code",
        "BillableTaskCode",
        "Billable coder work items",
        "What a Task in the coders' queue asks for.",
        TASK_CODES,
    ),
    (
        "billable-benefit-category",
        f"{BASE}/benefit-category",
        "BillableBenefitCategory",
        "Billable benefit categories",
        "The benefit categories of the payer's plans (cost share, eligibility).",
        BENEFIT_CATEGORIES,
    ),
    (
        "billable-benefit-type",
        f"{BASE}/benefit-type",
        "BillableBenefitType",
        "Billable benefit types",
        "Benefit types the HL7 benefit-type code system lacks.",
        BENEFIT_TYPES,
    ),
    (
        "billable-audit-subtype",
        AUDIT_SUBTYPE,
        "BillableAuditSubtype",
        "Billable audit event subtypes",
        "AuditEvent subtypes for requests that are no FHIR RESTful interaction.",
        AUDIT_DEFINITIONS,
    ),
)


def billable_codesystems() -> list[dict[str, Any]]:
    """The CodeSystem resources of Billable's own code systems (complete content)."""
    out = []
    for rid, url, name, title, description, concepts in SYSTEMS:
        out.append(
            {
                "resourceType": "CodeSystem",
                "id": rid,
                "url": url,
                "version": VERSION,
                "name": name,
                "title": title,
                "status": "active",
                "experimental": False,
                "date": DATE,
                "publisher": PUBLISHER,
                "description": description,
                "caseSensitive": True,
                "content": "complete",
                "count": len(concepts),
                "concept": [
                    {"code": code, "display": display, "definition": definition}
                    for code, (display, definition) in concepts.items()
                ],
            }
        )
    return out


def codes_of(url: str) -> frozenset[str]:
    for _rid, system, _n, _t, _d, concepts in SYSTEMS:
        if system == url:
            return frozenset(concepts)
    return frozenset()
