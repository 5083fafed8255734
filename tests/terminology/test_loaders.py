"""Loaders read the official release formats (small excerpts written for these tests)."""

from __future__ import annotations

from datetime import date

from terminology import systems
from terminology.loaders import billing, cms_mpfs, icd10cm, ncci, other_systems, snomed

from .conftest import FIXTURES


def test_icd10cm_tabular_xml_builds_hierarchy_notes_and_seventh_characters() -> None:
    cs = icd10cm.load_tabular_xml(FIXTURES / "icd10cm-tabular-excerpt.xml")
    assert cs.meta.version == "2027"
    assert cs.meta.effective_from == date(2026, 10, 1)
    assert cs.meta.effective_to == date(2027, 9, 30)
    c = cs.concepts
    assert not c["E11"].billable and c["E11.9"].billable and c["E11.9"].parent == "E11"
    assert cs.notes["E11"]["excludes1"] == ["type 1 diabetes mellitus (E10.-)"]
    assert c["G63"].manifestation and cs.notes["G63"]["codeFirst"] == ["underlying disease"]
    # T14.90 takes its 7th character from T14, padded with the placeholder X
    assert {"T14.90XA", "T14.90XD", "T14.90XS"} <= set(c)
    assert not c["T14.90"].billable and c["T14.90XA"].display == (
        "Injury, unspecified, initial encounter"
    )
    # ... and S06 codes with 6th character 7 take only A
    assert "S06.0X7A" in c and "S06.0X7D" not in c
    assert c["O80"].properties and c["O80"].properties["sex"] == "female"


def test_icd10cm_order_file() -> None:
    cs = icd10cm.load_order_file(FIXTURES / "icd10cm-order-excerpt.txt", 2027)
    c = cs.concepts
    assert not c["E11"].billable and c["E11.9"].billable and c["E11.A"].parent == "E11"
    assert c["E11.A"].display == "Type 2 diabetes mellitus without complications in remission"
    assert c["G35.A"].parent == "G35"


def test_icd10pcs_order_file() -> None:
    cs = other_systems.load_pcs_order_file(FIXTURES / "icd10pcs-order-excerpt.txt", 2027)
    assert cs.meta.url == systems.ICD10PCS and cs.meta.effective_from == date(2026, 10, 1)
    assert cs.concepts["0DTJ4ZZ"].billable and cs.concepts["0DTJ4ZZ"].parent == "0DT"
    assert not cs.concepts["0DT"].billable


def test_hcpcs_quarterly_csv_keeps_add_and_termination_dates() -> None:
    cs = other_systems.load_hcpcs(
        FIXTURES / "hcpcs-quarterly-excerpt.csv", "2026Q1", date(2026, 1, 1)
    )
    g0102 = cs.concepts["G0102"]
    assert g0102.valid_to == date(2025, 12, 31)
    assert cs.concepts["G0444"].valid_from == date(2011, 10, 14)
    assert cs.concepts["G0444"].display == "Annual depression screening, 5 to 15 minutes"


def test_hcpcs_fixed_width_file_joins_continuations_and_keeps_modifiers_apart() -> None:
    cs = other_systems.load_hcpcs(FIXTURES / "hcpcs-anweb-excerpt.txt", "2026Q1", date(2026, 1, 1))
    assert {c for c, x in cs.concepts.items() if x.billable} == {"G0008", "G0444", "J1644"}
    # a modifier is kept, but as a non-billable concept: it never validates as a line code
    assert not cs.concepts["GA"].billable
    assert cs.concepts["GA"].properties == {"kind": "modifier"}
    assert cs.concepts["J1644"].display.endswith("(continuation line for the test)")
    props = cs.concepts["G0444"].properties or {}
    assert props["designations"]["short"] == "Depression screen annual"


def test_cpt_licensed_file() -> None:
    cs = other_systems.load_cpt(FIXTURES / "cpt-licensed-excerpt.txt", "2026", date(2026, 1, 1))
    assert cs.meta.url == systems.CPT and set(cs.concepts) == {"99213", "99214"}
    assert "licence" in cs.meta.license


def test_snomed_rf2_snapshot() -> None:
    cs = snomed.load_rf2(FIXTURES / "rf2")
    assert cs.meta.version == "20250901"
    assert cs.concepts["44054006"].display == "Fixture type 2 diabetes term"
    assert cs.concepts["44054006"].parent == "73211009"
    assert cs.ancestors("44054006") == ["73211009", "138875005"]


def test_nlm_extended_map_with_age_and_sex_rules() -> None:
    cm = snomed.load_extended_map(FIXTURES / "der2_iisssciRefset_ExtendedMapSnapshot_excerpt.txt")
    fever = cm.entries["386661006"]
    assert [t.code for t in fever] == ["P81.9", "R50.9"]
    assert fever[0].age_max is not None and fever[0].age_max < 0.1  # 28 days in years
    assert fever[1].rule == "OTHERWISE TRUE"
    infertility = cm.entries["707577004"]
    assert [(t.code, t.sex) for t in infertility] == [
        ("N97.9", "female"),
        ("N46.9", "male"),
        (None, None),
    ]
    neuropathy = cm.entries["368581000119106"]
    assert [(t.map_group, t.code) for t in neuropathy] == [(1, "E11.40"), (2, None)]
    assert "ADDITIONAL CODE" in neuropathy[1].advice


def test_ncci_ptp_text_file() -> None:
    data = billing.load_ptp(FIXTURES / "ncci-ptp-excerpt.txt", "2026Q1")
    assert data["kind"] == "ncci-ptp" and len(data["edits"]) == 3
    assert data["edits"][2] == [
        "94010",
        "94618",
        "2010-01-01",
        "2023-01-01",
        "1",
        "Standards of medical / surgical practice",
    ]
    assert data["meta"]["effective_from"] == "2004-01-01"


def test_mue_file() -> None:
    data = ncci.load_mue(FIXTURES / "mue-excerpt.csv", "2026Q1", date(2026, 1, 1))
    assert data["mues"][0][:3] == ["36415", 2, "3"]


def test_pprrvu_file_never_keeps_descriptors() -> None:
    data = cms_mpfs.load_rvu(FIXTURES / "pprrvu-excerpt.csv", "2027A")
    assert data["conversion_factor"] == 30.0
    assert data["rvus"][1][:8] == ["93000", "26", "A", 0.17, 0.06, 0.06, 0.01, "XXX"]
    assert data["meta"]["effective_from"] == "2027-01-01"


def test_gpci_file() -> None:
    data = cms_mpfs.load_gpci(FIXTURES / "gpci-excerpt.csv", "2027")
    assert [row[:5] for row in data["gpcis"]] == [
        ["01112-05", "SAN FRANCISCO", 1.1, 1.5, 0.6],
        ["10112-00", "ALABAMA", 1.0, 0.9, 0.5],
    ]
