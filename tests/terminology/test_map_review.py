"""The curated SNOMED CT -> ICD-10-CM map, checked row by row as a coder reviews it.

* No perinatal (P00-P96) or newborn target is reachable for a patient older than 28 days
  (ICD-10-CM Guidelines I.C.16: chapter 16 codes are for conditions of the perinatal
  period; the MCE "newborn" age edit), and no juvenile/child target for an adult.
* Every concept has a reviewed body system (``terminology/curation/map-review.tsv``) and
  every target's chapter agrees with it, outside a reviewed exceptions list with reasons.
* A concept whose map has two groups yields both codes (NLM map model: one target per
  group), e.g. Alzheimer disease -> G30.9 + F02.80 (I.A.13 etiology/manifestation).
* The map ships SNOMED CT identifiers with Billable's own short descriptions only.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from terminology import systems
from terminology.model import ConceptMapVersion
from terminology.service import TerminologyService

CURATION = Path(__file__).resolve().parents[2] / "terminology" / "curation"
# Ages in years at which the map is exercised; 29 days is just past the perinatal period.
NOT_NEWBORN = (29 / 365.25, 1.0, 10.0, 17.5)
ADULT = (18.0, 30.0, 70.0)
JUVENILE = re.compile(
    r"newborn|neonat|perinatal|juvenile|\bchild\b|\bchildhood\b|pediatric|adolescent|infant",
    re.I,
)
# Titles that name a juvenile group without being restricted to it, each reviewed.
JUVENILE_OK = {
    "G47.33": "title reads '(adult) (pediatric)': for any age",
    "Z68.54": "pediatric BMI codes are for ages 2-19 (Z68 note), so 18-19 year olds get them",
}
CHAPTERS = {
    "infection": {1, 22},
    "neoplasm": {2},
    "blood": {3},
    "endocrine": {4},
    "mental": {5},
    "nervous": {6},
    "eye": {7},
    "ear": {8},
    "circulatory": {9},
    "respiratory": {10},
    "digestive": {11},
    "skin": {12},
    "musculoskeletal": {13},
    "genitourinary": {14},
    "pregnancy": {15},
    "congenital": {17},
    "symptom": {18},
    "injury": {19, 20},
    "status": {21},
    "none": set(),
}


def chapter(code: str) -> int:
    """The ICD-10-CM chapter of a code (tabular chapter ranges)."""
    letter, number = code[0], int(code[1:3]) if code[1:3].isdigit() else 0
    if letter in "AB":
        return 1
    if letter == "C" or (letter == "D" and number < 50):
        return 2
    if letter == "D":
        return 3
    if letter == "H":
        return 7 if number < 60 else 8
    table = {"E": 4, "F": 5, "G": 6, "I": 9, "J": 10, "K": 11, "L": 12, "M": 13, "N": 14}
    table |= {"O": 15, "P": 16, "Q": 17, "R": 18, "S": 19, "T": 19, "Z": 21, "U": 22}
    return table.get(letter, 20)  # V-Y: external causes


@pytest.fixture(scope="module")
def condition_map(service: TerminologyService) -> ConceptMapVersion:
    maps = [m for m in service.concept_maps() if m.meta.url == systems.MAP_SNOMED_ICD10CM]
    assert len(maps) == 1
    return maps[0]


def review() -> dict[str, tuple[str, dict[int, str]]]:
    out = {}
    for line in (CURATION / "map-review.tsv").read_text().splitlines():
        if line.startswith("#") or line.startswith("source_code") or not line.strip():
            continue
        code, body, chapters, reasons = (line.split("\t") + ["", ""])[:4]
        allowed = {
            int(c): r for c, r in zip(chapters.split(";"), reasons.split(";"), strict=False) if c
        }
        out[code] = (body, allowed)
    return out


def reached(service: TerminologyService, code: str, age: float, sex: str) -> list[str]:
    matches = service.translate(systems.SNOMED, code, systems.ICD10CM, None, age=age, sex=sex)
    return [m.code for m in matches if m.code]


def test_no_patient_older_than_28_days_reaches_a_perinatal_or_newborn_code(
    service: TerminologyService, condition_map: ConceptMapVersion
):
    icd, _ = service.code_system(systems.ICD10CM, version="2026")
    wrong = []
    for source in condition_map.entries:
        for age in NOT_NEWBORN + ADULT:
            for sex in ("male", "female"):
                for code in reached(service, source, age, sex):
                    title = icd.concepts[code].display
                    if code[0] == "P" or re.search(r"newborn|neonat|perinatal", title, re.I):
                        wrong.append(f"{source} at {age:.2f} y ({sex}) -> {code} {title}")
    assert wrong == []


def test_no_adult_reaches_a_juvenile_code(
    service: TerminologyService, condition_map: ConceptMapVersion
):
    icd, _ = service.code_system(systems.ICD10CM, version="2026")
    wrong = []
    for source in condition_map.entries:
        for age in ADULT:
            for sex in ("male", "female"):
                for code in reached(service, source, age, sex):
                    title = icd.concepts[code].display
                    if JUVENILE.search(title) and code not in JUVENILE_OK:
                        wrong.append(f"{source} at {age:.0f} y ({sex}) -> {code} {title}")
    assert wrong == []


def test_a_newborn_still_gets_the_perinatal_code():
    """The age rules are real: the same concept gives P29.2 at 3 days and I10 at 40 years."""
    from terminology.service import get_service

    service = get_service()
    assert reached(service, "59621000", 3 / 365.25, "male") == ["P29.2"]
    assert reached(service, "59621000", 40.0, "male") == ["I10"]


def test_every_concept_is_reviewed_and_its_targets_agree_with_its_body_system(
    condition_map: ConceptMapVersion,
):
    reviewed = review()
    missing = sorted(set(condition_map.entries) - set(reviewed))
    assert missing == [], f"concepts without a review row in map-review.tsv: {missing}"
    wrong = []
    for source, targets in condition_map.entries.items():
        body, exceptions = reviewed[source]
        allowed = CHAPTERS[body] | set(exceptions)
        for t in targets:
            if t.code is None:
                continue
            newborn_only = t.age_max is not None and t.age_max <= 28 / 365.25 + 1e-9
            if newborn_only and chapter(t.code) == 16:
                continue  # perinatal alternatives are checked by the age tests above
            if chapter(t.code) not in allowed:
                wrong.append(
                    f"{source} ({condition_map.source_displays[source]}, {body}) ->"
                    f" {t.code} in chapter {chapter(t.code)}"
                )
    assert wrong == []


def test_every_exception_has_a_reason():
    for source, (body, exceptions) in review().items():
        assert body in CHAPTERS, f"{source}: unknown body system {body}"
        for chap, reason in exceptions.items():
            assert reason.strip(), f"{source}: chapter {chap} allowed without a reason"


def test_each_map_group_gives_its_own_code(service: TerminologyService):
    # Etiology and manifestation (I.A.13): Alzheimer disease is G30.9 and F02.80.
    assert reached(service, "26929004", 80.0, "female") == ["G30.9", "F02.80"]
    # Injury and external cause (I.C.20): a gunshot wound is the injury plus the cause.
    assert reached(service, "283545005", 30.0, "male") == ["T14.8XXA", "Y24.9XXA"]
    # Morbid obesity and its BMI (I.B.14): adult BMI from 20, pediatric 2-19.
    assert reached(service, "408512008", 45.0, "male") == ["E66.01", "Z68.41"]
    assert reached(service, "408512008", 12.0, "male") == ["E66.01", "Z68.54"]


def test_the_map_ships_own_descriptions_not_snomed_ones():
    """Every description comes from snomed_conditions.txt, Billable's own words."""
    own = {}
    for line in (CURATION / "snomed_conditions.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            cols = line.split("|")
            own[cols[0]] = cols[1]
    for line in (CURATION / "snomed-icd10cm.tsv").read_text().splitlines():
        if line.startswith("#") or line.startswith("source_code"):
            continue
        cols = line.split("\t")
        assert own.get(cols[0]) == cols[1], cols[:2]
        assert "(disorder)" not in cols[1] and "(finding)" not in cols[1]
