"""ICD-10-CM as the coding engine sees it: complete, versioned by fiscal year, with notes."""

from __future__ import annotations

from datetime import date

import pytest

from terminology import systems
from terminology.service import TerminologyError, TerminologyService

FY2025_DAY = date(2025, 5, 1)
FY2026_DAY = date(2026, 1, 15)


def test_both_fiscal_years_are_shipped_complete(service: TerminologyService) -> None:
    fy2025, _ = service.code_system(systems.ICD10CM, version="2025")
    fy2026, _ = service.code_system(systems.ICD10CM, version="2026")
    # FY2025 matches the CMS count of valid (billable) codes: 74,260.
    assert sum(c.billable for c in fy2025.concepts.values()) == 74260
    assert sum(c.billable for c in fy2026.concepts.values()) > 74700
    assert fy2025.meta.effective_from == date(2024, 10, 1)
    assert fy2026.meta.effective_to == date(2026, 9, 30)


def test_the_version_in_force_is_chosen_by_date_of_service(service: TerminologyService) -> None:
    assert service.lookup("icd10cm", "E11.9", FY2025_DAY).meta.version == "2025"
    assert service.lookup("icd10cm", "E11.9", FY2026_DAY).meta.version == "2026"


def test_category_is_a_header_and_its_subcode_is_billable(service: TerminologyService) -> None:
    header = service.validate_code("icd10cm", "E11", FY2026_DAY)
    assert not header.valid and header.reason == "not-billable"
    assert "header" in header.message and "E11.0" in header.message
    billable = service.validate_code("icd10cm", "E11.9", FY2026_DAY)
    assert billable.valid and billable.display == "Type 2 diabetes mellitus without complications"


def test_codes_are_accepted_without_the_dot(service: TerminologyService) -> None:
    assert service.lookup(systems.ICD10CM, "e119", FY2026_DAY).concept.code == "E11.9"


@pytest.mark.parametrize(
    ("code", "display_end"),
    [
        ("S72.001A", "initial encounter for closed fracture"),
        ("T14.90XA", "initial encounter"),  # placeholder X pads to six characters
        ("T07.XXXS", "sequela"),
    ],
)
def test_codes_completed_by_a_seventh_character_exist(
    service: TerminologyService, code: str, display_end: str
) -> None:
    found = service.lookup("icd10cm", code, FY2026_DAY)
    assert found.concept.billable and found.display.endswith(display_end)
    # ... and the code they extend becomes a header
    assert not service.lookup("icd10cm", found.concept.parent or "", FY2026_DAY).concept.billable


def test_seventh_characters_follow_the_s06_exception(service: TerminologyService) -> None:
    assert service.validate_code("icd10cm", "S06.1X7A", FY2026_DAY).valid
    assert service.validate_code("icd10cm", "S06.1X7D", FY2026_DAY).reason == "unknown-code"


def test_code_added_in_fy2026_is_not_valid_for_fy2025_dates(service: TerminologyService) -> None:
    before = service.validate_code("icd10cm", "E11.A", FY2025_DAY)
    assert before.reason == "not-effective"
    assert "added in ICD-10-CM FY2026" in before.message and "2025-10-01" in before.message
    assert service.validate_code("icd10cm", "E11.A", FY2026_DAY).valid


def test_code_deleted_in_fy2026_is_explained(service: TerminologyService) -> None:
    assert service.validate_code("icd10cm", "S30.1XXA", FY2025_DAY).valid
    after = service.validate_code("icd10cm", "S30.1XXA", FY2026_DAY)
    assert after.reason == "not-effective" and "deleted" in after.message


def test_code_expanded_in_fy2026_becomes_a_header(service: TerminologyService) -> None:
    # Multiple sclerosis G35 was billable in FY2025 and has subcodes from FY2026.
    assert service.validate_code("icd10cm", "G35", FY2025_DAY).valid
    assert service.validate_code("icd10cm", "G35", FY2026_DAY).reason == "not-billable"


def test_unknown_code_gets_a_hint(service: TerminologyService) -> None:
    result = service.validate_code("icd10cm", "E11.99", FY2026_DAY)
    assert result.reason == "unknown-code" and "E11.9" in result.message


def test_notes_include_those_inherited_from_the_category(service: TerminologyService) -> None:
    found = service.lookup("icd10cm", "E11.9", FY2026_DAY)
    kinds = {(n.kind, n.at) for n in found.notes}
    assert ("excludes1", "E11") in kinds
    assert ("useAdditionalCode", "E11") in kinds


def test_manifestation_codes_warn_that_they_cannot_be_principal(
    service: TerminologyService,
) -> None:
    result = service.validate_code("icd10cm", "G63", FY2026_DAY)
    assert result.valid
    assert any("cannot be the principal" in w for w in result.warnings)
    found = service.lookup("icd10cm", "G63", FY2026_DAY)
    assert any(n.kind == "codeFirst" for n in found.notes)


def test_age_and_sex_conflicts_are_reported(service: TerminologyService) -> None:
    delivery = service.validate_code("icd10cm", "O80", FY2026_DAY, age=30, sex="male")
    assert any("female patients only" in w for w in delivery.warnings)
    newborn = service.validate_code("icd10cm", "Z38.00", FY2026_DAY, age=40, sex="female")
    assert any("newborn" in w for w in newborn.warnings)
    prostate = service.lookup("icd10cm", "N40.0", FY2026_DAY)
    assert prostate.property("sex") == "male"


def test_dates_after_the_newest_release_are_answered_with_a_warning(
    service: TerminologyService,
) -> None:
    found = service.lookup("icd10cm", "E11.9", date(2027, 11, 2))
    assert found.meta.version == "2027"
    assert found.warnings and "Load the newer release" in found.warnings[0]


def test_dates_before_the_oldest_release_have_no_answer(service: TerminologyService) -> None:
    with pytest.raises(TerminologyError) as err:
        service.lookup("icd10cm", "E11.9", date(2020, 1, 1))
    assert err.value.kind == "not-effective"


def test_implicit_value_set_of_billable_descendants(service: TerminologyService) -> None:
    expansion = service.expand(
        f"{systems.ICD10CM}?fhir_vs=isa/E11", day=FY2026_DAY, exclude_abstract=True
    )
    codes = [i.code for i in expansion.items]
    assert "E11.9" in codes and "E11.A" in codes and "E11" not in codes
    assert all(c.startswith("E11.") for c in codes)
    assert all(not i.abstract for i in expansion.items)
    fy2025 = service.expand(f"{systems.ICD10CM}?fhir_vs=isa/E11", day=FY2025_DAY)
    assert "E11.A" not in [i.code for i in fy2025.items]


def test_expansion_filters_and_pages(service: TerminologyService) -> None:
    url = f"{systems.ICD10CM}?fhir_vs"
    everything = service.expand(url, filter="femur neck closed initial", day=FY2026_DAY)
    page = service.expand(
        url, filter="femur neck closed initial", day=FY2026_DAY, count=2, offset=1
    )
    assert everything.total == page.total > 3
    assert [i.code for i in page.items] == [i.code for i in everything.items[1:3]]
