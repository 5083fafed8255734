"""Professional claims in facility settings (ED, inpatient, outpatient hospital: POS
19/21/22/23): only the professional component, per the PC/TC indicator and the reviewed
rules of ``facility-professional.csv``; what facility staff perform goes on the
facility's claim, not the physician's."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from mappings.coding.fee_facts import pctc_indicator
from mappings.coding.lines import Line
from mappings.coding.tables import RuleTables
from terminology.service import TerminologyService

DATA = Path(__file__).resolve().parent.parent / "data" / "facility-professional.csv"


@dataclass(frozen=True, slots=True)
class FacilityRule:
    rule: str
    low: int
    high: int
    action: str  # replace | remove | keep
    replacement: str
    source: str


@lru_cache(maxsize=1)
def facility_rules() -> tuple[list[FacilityRule], str]:
    lines = DATA.read_text(encoding="utf-8").splitlines()
    header = next((ln[1:].strip() for ln in lines if ln.startswith("#")), "")
    m = re.search(r"version ([\w.\-]+)", header)
    rules = []
    for r in csv.DictReader([ln for ln in lines if ln.strip() and not ln.startswith("#")]):
        lo, _, hi = r["codes"].partition("-")
        rules.append(
            FacilityRule(
                r["rule"], int(lo), int(hi or lo), r["action"], r["replacement"], r["source"]
            )
        )
    return rules, m.group(1) if m else "unversioned"


def replacement_codes() -> set[str]:
    return {r.replacement for r in facility_rules()[0] if r.replacement}


class CoderLike(Protocol):
    t: TerminologyService
    tables: RuleTables
    dos: date

    def problem(self, severity: str, code: str, message: str, location: str) -> None: ...


def _rule(code: str) -> FacilityRule | None:
    if not code.isdigit():
        return None
    n = int(code)
    return next((r for r in facility_rules()[0] if r.low <= n <= r.high), None)


def professional_component(c: CoderLike, lines: list[Line]) -> list[Line]:
    """The lines a physician bills in a facility: interpretation codes, modifier 26."""
    out = []
    for ln in lines:
        rule = _rule(ln.code)
        if rule is not None and rule.action == "remove":
            c.problem(
                "information",
                "facility-service",
                f"{ln.code} is performed by facility staff in a facility setting and belongs on"
                f" the facility's claim ({rule.source})",
                "Claim.item",
            )
            continue
        if rule is not None and rule.action == "replace":
            c.problem(
                "information",
                "professional-component",
                f"{ln.code} -> {rule.replacement}: in a facility the physician bills the"
                f" interpretation only ({rule.source})",
                "Claim.item",
            )
            ln.code, ln.display = rule.replacement, "Interpretation and report"
            out.append(ln)
            continue
        indicator = pctc_indicator(ln.code, ln.day, c.t, c.tables)
        if indicator == "3":
            c.problem(
                "information",
                "facility-service",
                f"{ln.code} is a technical component only (PC/TC indicator 3): the facility"
                " bills it",
                "Claim.item",
            )
            continue
        if indicator == "1" and "26" not in ln.modifiers:
            ln.modifiers.append("26")
        out.append(ln)
    return out
