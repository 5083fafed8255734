"""Every edit code the coding engine can raise is a concept of the published
``coding-edit`` code system, and nothing in that code system is stale."""

from __future__ import annotations

import re
from pathlib import Path

from mappings.coding.model import ISSUE_TYPES
from terminology.billable_systems import CODING_EDITS

ROOT = Path(__file__).resolve().parents[2]


def test_the_published_edit_codes_are_exactly_the_engines():
    assert sorted(set(ISSUE_TYPES) ^ set(CODING_EDITS)) == []


def test_every_edit_code_raised_in_the_source_is_published():
    raised: set[str] = set()
    pattern = re.compile(r'problem\(\s*"(?:error|warning|information)",\s*"([a-z0-9-]+)"')
    for path in (ROOT / "mappings").rglob("*.py"):
        raised.update(pattern.findall(path.read_text()))
    assert raised, "the scan found no problem() calls: the pattern is out of date"
    assert sorted(raised - set(CODING_EDITS)) == []
