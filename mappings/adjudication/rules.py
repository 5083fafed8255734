"""Payer-side tables and checks: service categories, medical necessity, contracted rates.

The payer does its own checks with the terminology service (code validity on the date of
service, NCCI, MUE, fees) rather than trusting the coding engine that produced the
claim: a payer adjudicates claims from any biller.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache

from mappings.adjudication.benefits import DATA_DIR
from terminology import systems

CPT = systems.CPT
HCPCS = systems.HCPCS
BILLING_SYSTEMS = {
    CPT: "cpt",
    HCPCS: "hcpcs",
    systems.HCPCS_HTTP: "hcpcs",
    "https://bluebutton.cms.gov/resources/codesystem/hcpcs": "hcpcs",
    "http://terminology.hl7.org/CodeSystem/HCPCS-all-codes": "hcpcs",
}
# Modifiers that bypass an NCCI edit whose modifier indicator is 1.
NCCI_BYPASS = {"59", "XE", "XS", "XP", "XU", "25", "91", "LT", "RT", "E1", "E2", "E3", "E4"}
# Places of service (CMS POS codes) that decide the category or the facility rate.
FACILITY_POS = {"19", "21", "22", "23", "24", "26", "31", "34", "51", "52", "56", "61"}
PRIMARY_CARE_TAXONOMIES = (
    "207Q",  # family medicine
    "207R",  # internal medicine
    "208000000X",  # pediatrics
    "208D",  # general practice
    "363L",  # nurse practitioner
    "363A",  # physician assistant
)
PREVENTIVE_CODES = {
    "99381", "99382", "99383", "99384", "99385", "99386", "99387",
    "99391", "99392", "99393", "99394", "99395", "99396", "99397",
    "99401", "99402", "99403", "99404", "99408", "99409",
    "G0101", "G0102", "G0121", "G0328", "G0402", "G0438", "G0439", "G0442", "G0444",
    "G0445", "G0472", "G0475", "77067", "82270", "86580", "92551", "96127", "96160",
    "90471", "90472", "90460", "90461", "S3620", "V5008",
}  # fmt: skip


def category_of(code: str, modifiers: list[str], pos: str | None, specialist: bool) -> str:
    """The benefit category a line's cost share comes from (docs/adjudication.md)."""
    if code in PREVENTIVE_CODES or "33" in modifiers or (code.startswith("90") and _vaccine(code)):
        return "preventive"
    if code.startswith("9928") or pos == "23":
        return "emergency"
    if pos == "20":
        return "urgent-care"
    if pos in ("02", "10") or "95" in modifiers:
        return "telehealth"
    if pos in ("21", "51", "61"):
        return "inpatient"
    if code in _OFFICE_EM:
        return "specialist" if specialist else "office-visit"
    if code.startswith("9924"):
        return "specialist"
    return "other"


_OFFICE_EM = {"99202", "99203", "99204", "99205", "99211", "99212", "99213", "99214", "99215"}


def _vaccine(code: str) -> bool:
    return code.isdigit() and 90476 <= int(code) <= 90759


def is_specialist(taxonomies: list[str]) -> bool:
    """A rendering provider whose taxonomy is known and not primary care."""
    if not taxonomies:
        return False
    return not any(t.startswith(PRIMARY_CARE_TAXONOMIES) for t in taxonomies)


@dataclass(frozen=True, slots=True)
class NecessityPolicy:
    code: str
    prefixes: tuple[str, ...]
    policy: str


@cache
def medical_necessity() -> dict[str, NecessityPolicy]:
    rows: dict[str, NecessityPolicy] = {}
    with (DATA_DIR / "medical-necessity.tsv").open() as handle:
        lines = [line for line in handle if not line.startswith("#")]
    for row in csv.DictReader(lines, delimiter="\t"):
        prefixes = tuple(p.strip() for p in row["covered_icd10cm_prefixes"].split(",") if p)
        rows[row["code"]] = NecessityPolicy(row["code"], prefixes, row["policy"])
    return rows


def necessity_problem(code: str, diagnoses: list[str]) -> str | None:
    """Why the diagnoses do not support ``code`` under the payer's policy, or None."""
    policy = medical_necessity().get(code)
    if policy is None:
        return None
    normalised = [d.replace(".", "").upper() for d in diagnoses]
    for prefix in policy.prefixes:
        bare = prefix.replace(".", "").upper()
        if any(d.startswith(bare) for d in normalised):
            return None
    shown = ", ".join(diagnoses) or "no diagnosis"
    return (
        f"{code} is not medically necessary for {shown} under the payer's policy ({policy.policy})"
    )


@dataclass(frozen=True, slots=True)
class Rate:
    payer: str
    code: str
    modifier: str
    amount: Decimal
    effective_from: date | None
    effective_to: date | None


class RateTable:
    """Contracted allowed amounts per payer and code; consulted before the fee schedule."""

    def __init__(self, rates: list[Rate] | None = None) -> None:
        self._rates: dict[tuple[str, str], list[Rate]] = {}
        for rate in rates or []:
            self.add(rate)

    def add(self, rate: Rate) -> None:
        self._rates.setdefault((rate.payer, rate.code), []).append(rate)

    def find(self, payers: list[str], code: str, modifiers: list[str], day: date) -> Rate | None:
        for payer in payers:
            for rate in self._rates.get((payer, code), []):
                if rate.modifier and rate.modifier not in modifiers:
                    continue
                if rate.effective_from and day < rate.effective_from:
                    continue
                if rate.effective_to and day > rate.effective_to:
                    continue
                return rate
        return None

    @classmethod
    def from_csv(cls, path: str) -> RateTable:
        with open(path) as handle:
            lines = [line for line in handle if not line.startswith("#")]
        table = cls()
        for row in csv.DictReader(lines):
            table.add(
                Rate(
                    row["payer"],
                    row["code"],
                    row.get("modifier") or "",
                    Decimal(row["amount"]),
                    date.fromisoformat(row["effective_from"])
                    if row.get("effective_from")
                    else None,
                    date.fromisoformat(row["effective_to"]) if row.get("effective_to") else None,
                )
            )
        return table


@cache
def shipped_rates() -> RateTable:
    return RateTable.from_csv(str(DATA_DIR / "contracted-rates.csv"))
