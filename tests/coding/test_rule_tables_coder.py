"""The coder rule tables are reviewed data: every row names its source, and every code a
rule produces is a billable code of the shipped ICD-10-CM release."""

from __future__ import annotations

import re
from datetime import date

from mappings.coding.dx_rules import dx_rules
from mappings.coding.immunizations import vaccine_table
from mappings.coding.payers import payer_tables
from terminology import systems
from terminology.service import get_service

KINDS = {"combine", "integral", "additional", "first", "weight", "history"}
CITES = re.compile(r"\bI\.[A-C]\.|\bIV\.|[Tt]abular|[Ii]ndex|Excludes1")


def test_every_diagnosis_rule_has_a_known_kind_and_a_cited_source():
    for rule in dx_rules().rules:
        assert rule.kind in KINDS, rule.rule
        assert CITES.search(rule.source), f"{rule.rule}: {rule.source}"


def test_every_combination_result_is_a_billable_fy2026_code_for_each_diabetes_type():
    t = get_service()
    day = date(2026, 3, 2)
    bad = []
    for rule in dx_rules().of("combine"):
        if not rule.result:
            continue
        categories = [b[:3] for b in rule.base] if "{cat}" in rule.result else [""]
        for cat in categories:
            code = rule.result.replace("{cat}", cat)
            if not t.validate_code(systems.ICD10CM, code, day).valid:
                bad.append(f"{rule.rule}: {code}")
    assert bad == []


def test_every_payer_kind_has_its_rules():
    tables = payer_tables()
    kinds = {k for rows in tables.codes.values() for _, k in rows} | {k for _, k in tables.words}
    assert kinds <= set(tables.rules)
    assert set(tables.rules) == {"medicare", "medicaid", "commercial", "self-pay"}


def test_vaccine_rows_have_an_admin_route_and_components():
    table, version = vaccine_table()
    assert version != "unversioned"
    for rows in table.values():
        for v in rows:
            assert v.route in ("injection", "oral", "intranasal")
            assert v.components >= 1
            assert v.min_age < v.max_age
