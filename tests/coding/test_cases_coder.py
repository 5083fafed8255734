"""The coder gold set is a specification: every case says which rule it tests and where
the rule comes from, and together the cases cover every payer kind."""

from __future__ import annotations

import re

from mappings.coding.payers import active_coverages, coverage_kind
from tests.coding.cases import CASES, DOS
from tests.coding.cases_coder import CODER_CASES

SOURCE = re.compile(
    r"\b(I\.[A-C]\.|II\.|IV\.|CPT|CMS|NCCI|MCPM|MPFS|Medicare|Medicaid|[Tt]abular|[Ii]ndex|"
    r"[A-Z]\d\d(\.\d+)?\b|Map groups?|map model)"
)


def test_the_whole_gold_set_has_at_least_150_cases_with_unique_names():
    names = [c.name for c in CASES + CODER_CASES]
    assert len(names) >= 150
    assert len(set(names)) == len(names)


def test_every_coder_case_names_the_rule_and_its_source():
    missing = [c.name for c in CODER_CASES if not SOURCE.search(getattr(c, "rationale", ""))]
    assert missing == []


def test_the_cases_cover_every_payer_kind():
    from datetime import date

    kinds = set()
    for case in CASES + CODER_CASES:
        active = active_coverages(case.coverages, date.fromisoformat(DOS))
        kinds.add(coverage_kind(active[0])[0] if active else "self-pay")
    assert kinds >= {"medicare", "medicaid", "commercial", "self-pay"}
