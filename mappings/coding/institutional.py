"""What an institutional (UB-04) claim adds: revenue codes, the room and board line of an
inpatient stay and the bill kind (CARIN's C4BBInstitutionalClaimSubType)."""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol

from mappings.coding.fhir_values import day as _day
from mappings.coding.lines import Line
from mappings.coding.tables import RuleTables

REVENUE = "https://www.nubc.org/CodeSystem/RevenueCodes"
INSTITUTIONAL_SUBTYPE = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBInstitutionalClaimSubType"


class CoderLike(Protocol):
    """What the institutional rules need from the engine (``engine._Coder``)."""

    tables: RuleTables
    period: dict[str, Any]
    dos: date

    def problem(self, severity: str, code: str, message: str, location: str) -> None: ...


def revenue_center(c: CoderLike, ln: Line, i: int) -> None:
    """A UB-04 line needs its revenue code (mappings/data/revenue-centers.csv)."""
    revenue = c.tables.revenue_of(ln.code)
    if revenue is None:
        revenue = "0510"
        c.problem(
            "information",
            "revenue-default",
            f"{ln.code} falls in no revenue center of revenue-centers.csv: billed under"
            " 0510 (clinic); check the line's revenue code",
            f"Claim.item[{i}].revenue",
        )
    ln.revenue = revenue


def accommodation(c: CoderLike) -> Line:
    """The room and board line of an inpatient stay: one unit per night (at least one)."""
    end = _day(c.period.get("end")) or c.dos
    days = max(1, (end - c.dos).days)
    return Line("0120", REVENUE, "Room and board, semi-private", c.dos, days, revenue="0120")


def sub_type(inpatient: bool) -> dict[str, Any]:
    """``Claim.subType``: an inpatient stay, or a hospital outpatient visit (observation,
    day surgery)."""
    kind = "inpatient" if inpatient else "outpatient"
    return {"coding": [{"system": INSTITUTIONAL_SUBTYPE, "code": kind, "display": kind.title()}]}
