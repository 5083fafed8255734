"""The Medicare PFS indicators of a code, for the rules that depend on them.

One place answers "what does the relative value file say about this code on this date":
global surgery days (000, 010, 090, MMM, XXX, YYY, ZZZ), the PC/TC indicator, the
multiple-procedure, bilateral, assistant, co-surgeon and team indicators and the payment
status. Nothing here guesses: a code the RVU file in force does not list answers ``None``,
and the caller says so on the claim.

    from mappings.pricing import fee_schedule
    fee_schedule.global_days("27447", date(2026, 3, 2))   # "090"
    fee_schedule.pctc("71046", date(2026, 3, 2))          # "1"
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from terminology.model import Rvu
from terminology.service import TerminologyService, get_service

PAYABLE = ("A", "R", "T")
STATUS_MEANING = {
    "A": "active, paid under the fee schedule",
    "B": "bundled: payment is always included in another service",
    "C": "carrier (MAC) priced",
    "D": "deleted",
    "E": "excluded from the fee schedule by regulation",
    "F": "deleted, no grace period",
    "G": "not valid for Medicare (another code applies)",
    "H": "deleted modifier",
    "I": "not valid for Medicare purposes (Medicare uses another code)",
    "J": "anesthesia service (paid by base and time units)",
    "M": "measurement code, reported for quality only",
    "N": "non-covered by Medicare",
    "P": "bundled or excluded",
    "R": "restricted coverage",
    "T": "paid only when no other service is payable that day",
    "X": "statutory exclusion (paid, if at all, under another fee schedule)",
}
GLOBAL_MEANING = {
    "000": "0-day global (endoscopy, minor procedure)",
    "010": "10-day global (minor procedure)",
    "090": "90-day global (major surgery)",
    "MMM": "maternity package",
    "XXX": "the global concept does not apply",
    "YYY": "carrier-determined global period",
    "ZZZ": "add-on code, within the global period of another service",
}


@dataclass(frozen=True, slots=True)
class Indicators:
    """The RVU row of a code with the release it came from."""

    rvu: Rvu
    release: str  # e.g. RVU26C
    warnings: tuple[str, ...] = ()

    @property
    def global_days(self) -> str:
        return self.rvu.global_days

    @property
    def status(self) -> str:
        return self.rvu.status

    @property
    def payable(self) -> bool:
        return self.rvu.status in PAYABLE


def indicators(
    code: str,
    day: date,
    terminology: TerminologyService | None = None,
    modifier: str = "",
) -> Indicators | None:
    """The PFS indicators of ``code`` (and modifier 26/TC) on ``day``; None when the RVU
    file in force has no row for it."""
    t = terminology or get_service()
    row = t.rvu(code, day, modifier)
    if row is None and modifier:
        row = t.rvu(code, day)
    if row is None:
        return None
    meta, warnings = t.table_meta("mpfs-rvu", day)
    return Indicators(row, meta.version if meta else "", tuple(warnings))


def global_days(code: str, day: date, terminology: TerminologyService | None = None) -> str | None:
    """000, 010, 090, MMM, XXX, YYY or ZZZ from the RVU file; None when it does not list
    the code (then no global period is known: never assume one)."""
    found = indicators(code, day, terminology)
    return found.global_days if found else None


def pctc(code: str, day: date, terminology: TerminologyService | None = None) -> str | None:
    """The PC/TC indicator: 0 no split, 1 professional/technical split (26/TC allowed),
    2 professional only, 3 technical only, 4 global test only, 5 incident to, 6 lab
    physician interpretation, 7 physical therapy, 8 physician interpretation, 9 n/a."""
    found = indicators(code, day, terminology)
    return found.rvu.pctc if found else None


def minor_procedure(code: str, day: date, terminology: TerminologyService | None = None) -> bool:
    """A 0- or 10-day global procedure (an E/M the same day needs modifier 25)."""
    return global_days(code, day, terminology) in ("000", "010")
