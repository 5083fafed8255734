"""Map rules on the patient's age and sex, in the NLM extended-map syntax and in Billable's.

NLM's SNOMED CT to ICD-10-CM map writes rules such as::

    TRUE
    OTHERWISE TRUE
    IFA 248153007 | Male (finding) |
    IFA 445518008 | Age at onset of clinical finding (observable entity) | < 18.0 years
    IFA 445518008 | ... | >= 28.0 days AND IFA 445518008 | ... | < 18.0 years

Billable's curated tables use the short form ``[sex=female]``, ``[age<28d]``,
``[age>=7]`` (years unless ``d``/``m`` for days/months). Both become (sex, age_min,
age_max) with ages in years, ``age_min`` inclusive and ``age_max`` exclusive.
"""

from __future__ import annotations

import re

MALE = "248153007"
FEMALE = "248152002"
_AGE_CONCEPTS = ("445518008", "424144002", "397669002")
_NLM_AGE = re.compile(r"(<=|>=|<|>|=)\s*([0-9.]+)\s*(years?|months?|days?)", re.IGNORECASE)
_SHORT = re.compile(r"^(sex)=(male|female)$|^(age)(<=|>=|<|>)([0-9.]+)([ydm]?)$", re.IGNORECASE)

Rule = tuple[str | None, float | None, float | None]


def _years(value: float, unit: str) -> float:
    unit = unit.lower()[:1]
    if unit == "d":
        return value / 365.25
    if unit == "m":
        return value / 12.0
    return value


def _bound(op: str, years: float, age_min: float | None, age_max: float | None) -> Rule:
    # Ages are compared in fractional years; <= and > are turned into half-open bounds by
    # a day's margin so that "<= 17 years" keeps a 17.5-year-old in.
    day = 1 / 365.25
    if op == "<":
        age_max = years
    elif op == "<=":
        age_max = years + (1.0 if years == int(years) and years >= 1 else day)
    elif op == ">=":
        age_min = years
    elif op == ">":
        age_min = years + day
    elif op == "=":
        age_min, age_max = years, years + 1.0
    return None, age_min, age_max


def parse_nlm_rule(rule: str) -> Rule:
    """(sex, age_min, age_max) for an NLM ``mapRule``; unknown tests are ignored."""
    sex: str | None = None
    age_min: float | None = None
    age_max: float | None = None
    text = rule.strip()
    if text.upper() in ("TRUE", "OTHERWISE TRUE", ""):
        return None, None, None
    for clause in re.split(r"\bAND\b", text):
        if MALE in clause:
            sex = "male"
        elif FEMALE in clause:
            sex = "female"
        elif any(c in clause for c in _AGE_CONCEPTS):
            m = _NLM_AGE.search(clause)
            if m:
                _, age_min, age_max = _bound(
                    m.group(1), _years(float(m.group(2)), m.group(3)), age_min, age_max
                )
    return sex, age_min, age_max


def parse_short_rules(rules: list[str]) -> Rule:
    """(sex, age_min, age_max) for Billable's bracketed rules, e.g. ``["age<28d"]``."""
    sex: str | None = None
    age_min: float | None = None
    age_max: float | None = None
    for raw in rules:
        m = _SHORT.match(raw.strip().replace(" ", ""))
        if not m:
            raise ValueError(f"unknown map rule [{raw}]")
        if m.group(1):
            sex = m.group(2).lower()
        else:
            _, age_min, age_max = _bound(
                m.group(4), _years(float(m.group(5)), m.group(6) or "y"), age_min, age_max
            )
    return sex, age_min, age_max


def describe(sex: str | None, age_min: float | None, age_max: float | None) -> str:
    """A rule in words, as shown in ``$translate`` answers."""
    parts = []
    if sex:
        parts.append(f"IF SEX = {sex.upper()}")

    def fmt(years: float) -> str:
        if years < 1:
            return f"{round(years * 365.25)} DAYS"
        return f"{years:g} YEARS"

    if age_min is not None:
        parts.append(f"IF AGE >= {fmt(age_min)}")
    if age_max is not None:
        parts.append(f"IF AGE < {fmt(age_max)}")
    return " AND ".join(parts) if parts else "TRUE"
