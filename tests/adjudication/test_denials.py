"""Each denial reason: the CARC on the line, a message a coder can act on, allowed 0."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mappings.adjudication import AdjudicationConfig
from server.repository import Repository
from terminology.service import get_service
from tests.adjudication.conftest import (
    HCPCS,
    amounts,
    claim,
    denial,
    line,
    line_amounts,
    submit,
)


async def test_not_medically_necessary(repo: Repository) -> None:
    response = await submit(repo, claim(line("70551", 600), diagnoses=("E11.9",)))
    carc, text = denial(response, 1) or ("", "")
    assert carc == "50"
    assert "not medically necessary" in text.lower() and "E11.9" in text
    assert line_amounts(response, 1)["eligible"] == 0
    assert line_amounts(response, 1)["noncovered"] == 600


async def test_bundled_ncci_never_separately(repo: Repository) -> None:
    """80048 is a column-two code of 80053 with modifier indicator 0: bundled (CARC 97)."""
    response = await submit(repo, claim(line("80053", 60), line("80048", 45)))
    assert denial(response, 1) is None
    carc, text = denial(response, 2) or ("", "")
    assert carc == "97"
    assert "80053" in text and "Bundled" in text


async def test_bundled_ncci_modifier_allows_it(repo: Repository) -> None:
    """45378 is column two of 45380 with indicator 1: denied 236 without a modifier, paid
    with 59."""
    plain = await submit(repo, claim(line("45380", 800), line("45378", 700)))
    assert (denial(plain, 2) or ("",))[0] == "236"
    with_59 = await submit(
        repo,
        claim(
            line("45380", 800, "2026-04-01"), line("45378", 700, "2026-04-01", modifiers=("59",))
        ),
    )
    assert denial(with_59, 2) is None


async def test_units_over_mue(repo: Repository) -> None:
    """36415 (venipuncture) allows 2 units a day; 3 are billed."""
    response = await submit(repo, claim(line("36415", 30, qty=3)))
    carc, text = denial(response, 1) or ("", "")
    assert carc == "151"
    assert "at most 2" in text


class CompleteRelease:
    """The shipped terminology, presented as a complete CPT release (as a payer has)."""

    def __init__(self, service: Any) -> None:
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)

    def code_system(self, system: str, day: Any = None, version: Any = None) -> Any:
        found, warnings = self._service.code_system(system, day, version)
        return replace(found, content="complete"), warnings


async def test_invalid_code_on_date_of_service(
    repo: Repository, config: AdjudicationConfig
) -> None:
    config.terminology = CompleteRelease(get_service())
    response = await submit(repo, claim(line("99999", 100)))
    carc, text = denial(response, 1) or ("", "")
    assert carc == "181"
    assert "99999" in text


async def test_code_missing_from_a_shipped_subset_is_not_denied(repo: Repository) -> None:
    """Billable ships part of CPT: an unknown code may be real; it is paid and noted."""
    response = await submit(repo, claim(line("99499", 200)))
    assert denial(response, 1) is None
    assert any("not in the loaded CPT subset" in n["text"] for n in response["processNote"])


async def test_non_billing_code_lacks_information(repo: Repository) -> None:
    response = await submit(repo, claim(line("410620009", 100, system="http://snomed.info/sct")))
    assert (denial(response, 1) or ("",))[0] == "16"


async def test_coverage_not_active_on_date_of_service(repo: Repository) -> None:
    response = await submit(repo, claim(line("99213", 150, "2027-01-15")))
    carc, text = denial(response, 1) or ("", "")
    assert carc == "27"
    assert "ended 2026-12-31" in text
    # Patient responsibility (PR): the member owes the charge.
    assert line_amounts(response, 1)["memberliability"] == 150


async def test_service_not_covered_by_plan(repo: Repository) -> None:
    response = await submit(repo, claim(line("D0120", 90, system=HCPCS)))
    carc, text = denial(response, 1) or ("", "")
    assert carc == "204"
    assert "Dental" in text


async def test_exact_duplicate_of_an_adjudicated_claim(repo: Repository) -> None:
    original = await submit(repo, claim(line("99213", 150)))
    duplicate = await submit(repo, claim(line("99213", 150)))
    assert denial(original, 1) is None
    carc, text = denial(duplicate, 1) or ("", "")
    assert carc == "18"
    assert original["request"]["reference"] in text
    assert amounts(duplicate["total"])["benefit"] == 0


async def test_one_denied_line_leaves_the_others_paid(repo: Repository) -> None:
    response = await submit(repo, claim(line("99213", 150), line("36415", 30, qty=3)))
    assert response["disposition"] == "1 of 2 lines payable, 1 denied"
    assert amounts(response["total"])["benefit"] == 70
    assert any("CARC 151" in n["text"] for n in response["processNote"])
