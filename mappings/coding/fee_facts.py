"""The fee-schedule facts the coding rules need: global period and PC/TC indicator.

One place to read them, so that the rules (modifiers 25/57/26, procedure-only visits)
do not depend on where the data lives: today the terminology MPFS when it has the code,
else the charge master (``mappings.pricing.chargemaster.global_days``). When the CMS
fee-schedule module exposes them, rewire these two functions and nothing else.
"""

from __future__ import annotations

from datetime import date

from mappings.coding.tables import RuleTables
from mappings.pricing.chargemaster import global_days
from terminology.service import TerminologyService


def global_period(code: str, day: date, t: TerminologyService, tables: RuleTables) -> str:
    """CMS global surgery indicator: 000, 010, 090, XXX, YYY, ZZZ, MMM."""
    return global_days(code, day, t, tables)[0]


def pctc_indicator(code: str, day: date, t: TerminologyService, tables: RuleTables) -> str:
    """CMS PC/TC indicator (0-9): 1 = professional and technical components."""
    return global_days(code, day, t, tables)[1]
