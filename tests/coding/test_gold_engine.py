"""The gold set, in process: each hand-coded encounter through the engine alone."""

from __future__ import annotations

import pytest

from mappings.coding.engine import code_encounter
from mappings.coding.model import SourceData
from terminology.service import get_service
from tests.coding.cases import CASES as BASE_CASES
from tests.coding.cases import Case
from tests.coding.cases_cms import CASES_CMS
from tests.coding.cases_coder import CODER_CASES
from tests.coding.gold import mismatches, resources, source_lists

CASES = BASE_CASES + CASES_CMS + CODER_CASES


def test_the_gold_set_has_at_least_40_cases_with_unique_names():
    names = [c.name for c in CASES]
    assert len(names) >= 40
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_engine_codes_like_the_coder(case: Case):
    r = resources(case)
    source = SourceData(
        r["encounter"],
        r["patient"],
        r["conditions"],
        r["procedures"],
        r["coverages"],
        established=case.established,
        **source_lists(r),  # type: ignore[arg-type]
    )
    result = code_encounter(source, get_service())
    assert mismatches(case, result.claim, result.outcome()) == []
