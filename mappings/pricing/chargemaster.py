"""Unit prices from the provider's charge master.

By default the charge master is derived from the Medicare physician fee schedule: the
terminology module's MPFS (RVUs x GPCI of the configured locality x conversion factor, at
the facility or non-facility rate of the place of service) when it has the code for the
date of service, else the illustrative rows of ``mappings/data/charge-master-illustrative.csv``
priced the same way; the result is multiplied by a configurable factor (providers charge
above the Medicare allowance). Modifier 26 (professional component) is priced from the
work and malpractice RVUs only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from mappings.coding.tables import RuleTables
from terminology.service import TerminologyService

DEFAULT_CONVERSION_FACTOR = 33.4009


@dataclass(frozen=True, slots=True)
class Price:
    amount: float
    source: str  # which table priced it, for the Provenance and the coder
    global_days: str
    pctc: str


def global_days(
    code: str, day: date, terminology: TerminologyService, tables: RuleTables
) -> tuple[str, str]:
    """(global period, PC/TC indicator) of ``code`` from the fee schedule data."""
    fee = terminology.fee(code, day)
    if fee is not None:
        return fee.rvu.global_days, _pctc_of(code, tables)
    row = tables.charges.get(code)
    if row is None:
        return "XXX", "0"
    return row.global_days, row.pctc


def _pctc_of(code: str, tables: RuleTables) -> str:
    row = tables.charges.get(code)
    return row.pctc if row else "0"


def price(
    code: str,
    day: date,
    *,
    terminology: TerminologyService,
    tables: RuleTables,
    locality: str,
    facility: bool,
    factor: float,
    modifiers: tuple[str, ...] = (),
) -> Price | None:
    professional = "26" in modifiers
    fee = terminology.fee(code, day, locality=locality, facility=facility)
    if fee is not None:
        if professional:
            r, g = fee.rvu, fee.gpci
            amount = (r.work * g.work + r.malpractice * g.malpractice) * fee.conversion_factor
        else:
            amount = fee.amount
        return Price(
            round(amount * factor, 2),
            f"MPFS {fee.rvu_version} locality {locality}",
            fee.rvu.global_days,
            _pctc_of(code, tables),
        )
    row = tables.charges.get(code)
    if row is None:
        return None
    if row.kind == "fixed":
        return Price(round(row.charge, 2), "charge master (fixed)", row.global_days, row.pctc)
    gpci = _gpci(terminology, day, locality)
    gw, gpe, gmp = gpci
    pe = 0.0 if professional else (row.pe_facility if facility else row.pe_nonfacility)
    amount = (row.work * gw + pe * gpe + row.malpractice * gmp) * DEFAULT_CONVERSION_FACTOR
    return Price(
        round(amount * factor, 2),
        f"charge master (illustrative RVUs) locality {locality}",
        row.global_days,
        row.pctc,
    )


def _gpci(terminology: TerminologyService, day: date, locality: str) -> tuple[float, float, float]:
    """The locality's GPCIs from the fee schedule in force (nearest year), else 1.0."""
    fee = terminology.fee("99213", day, locality=locality) or terminology.fee(
        "99213", None, locality=locality
    )
    if fee is None:
        return 1.0, 1.0, 1.0
    return fee.gpci.work, fee.gpci.pe, fee.gpci.malpractice
