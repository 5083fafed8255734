"""The fee-schedule facts the coding rules need: global period and PC/TC indicator.

One place to read them, so that the rules (modifiers 25/57/26, procedure-only visits)
do not depend on where the data lives: the CMS PFS relative value file in force on the
date of service (``mappings.pricing.fee_schedule``). A code the file does not list has
no known global period or PC/TC split, and the rules never assume one (``""``).
"""

from __future__ import annotations

from datetime import date

from mappings.coding.tables import RuleTables
from mappings.pricing import fee_schedule
from terminology.service import TerminologyService


def global_period(code: str, day: date, t: TerminologyService, tables: RuleTables) -> str:
    """CMS global surgery indicator: 000, 010, 090, XXX, YYY, ZZZ, MMM ("" unknown)."""
    return fee_schedule.global_days(code, day, t) or ""


def pctc_indicator(code: str, day: date, t: TerminologyService, tables: RuleTables) -> str:
    """CMS PC/TC indicator (0-9): 1 = professional and technical components ("" unknown)."""
    return fee_schedule.pctc(code, day, t) or ""
