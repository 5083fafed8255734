"""Worked examples a payer analyst can check by hand (plan terms in conftest.py).

Each docstring shows the arithmetic: allowed = min(charge, contracted rate x units), then
deductible, then copay or 20 % coinsurance, capped by the out-of-pocket maximum.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from mappings.adjudication import AdjudicationConfig
from mappings.adjudication.rules import RateTable
from mappings.adjudication.service import accumulated
from server.repository import Repository
from tests.adjudication.conftest import (
    CTX,
    amounts,
    claim,
    coverage,
    line,
    line_amounts,
    plan_resource,
    submit,
)

KEY = "Patient/p1|test-plan|2026"


async def test_deductible_spans_two_claims_then_coinsurance(repo: Repository) -> None:
    """MRI 1: charge 600, allowed 400 → deductible 400 (100 left), plan pays 0.
    MRI 2: allowed 400 → deductible 100, coinsurance 20 % of 300 = 60, member 160, plan 240."""
    first = await submit(repo, claim(line("70551", 600, "2026-02-01"), diagnoses=("R51.9",)))
    assert line_amounts(first, 1) == {
        "submitted": 600,
        "eligible": 400,
        "deductible": 400,
        "copay": 0,
        "coinsurance": 0,
        "benefit": 0,
        "paidtoprovider": 0,
        "paidbypatient": 400,
        "memberliability": 400,
        "discount": 200,
    }
    assert await accumulated(repo, KEY) == (400, 400)
    second = await submit(repo, claim(line("70551", 600, "2026-03-01"), diagnoses=("R51.9",)))
    got = line_amounts(second, 1)
    assert (got["deductible"], got["coinsurance"], got["paidbypatient"], got["benefit"]) == (
        100,
        60,
        160,
        240,
    )
    assert await accumulated(repo, KEY) == (500, 560)


async def test_copay_office_visit_skips_the_deductible(repo: Repository) -> None:
    """99213: charge 150, allowed 100 → copay 30, plan pays 70, provider writes off 50."""
    response = await submit(repo, claim(line("99213", 150)))
    got = line_amounts(response, 1)
    assert (got["eligible"], got["deductible"], got["copay"], got["benefit"]) == (100, 0, 30, 70)
    assert got["discount"] == 50
    assert response["payment"]["amount"]["value"] == 70
    assert await accumulated(repo, KEY) == (0, 30)


async def test_specialist_and_emergency_copays(repo: Repository) -> None:
    """99243 consult: allowed 200 → specialist copay 60, plan 140. 99281 ER: allowed 150 is
    under the $200 ER copay, so the member pays 150 and the plan 0."""
    response = await submit(repo, claim(line("99243", 250), line("99281", 300)))
    assert line_amounts(response, 1)["copay"] == 60
    assert line_amounts(response, 1)["benefit"] == 140
    assert line_amounts(response, 2)["copay"] == 150
    assert line_amounts(response, 2)["benefit"] == 0


async def test_out_of_pocket_maximum_reached_mid_claim(repo: Repository) -> None:
    """Coverage caps out of pocket at 600 (its own costToBeneficiary).
    Line 1 MRI allowed 400: deductible 400 (OOP used 400).
    Line 2 knee replacement allowed 1600: deductible 100, coinsurance 20 % of 1500 = 300,
    but only 200 of OOP is left: the member pays 100 + 100 = 200 and the plan 1400."""
    await repo.update(
        CTX,
        "Coverage",
        "cov1",
        coverage(
            costToBeneficiary=[
                {
                    "type": {"coding": [{"code": "maxoutofpocket"}]},
                    "valueMoney": {"value": 600, "currency": "USD"},
                }
            ]
        ),
    )
    response = await submit(
        repo,
        claim(line("70551", 600), line("27447", 2000), diagnoses=("R51.9", "M17.11")),
    )
    knee = line_amounts(response, 2)
    assert (knee["deductible"], knee["coinsurance"], knee["paidbypatient"], knee["benefit"]) == (
        100,
        100,
        200,
        1400,
    )
    totals = amounts(response["total"])
    assert totals["paidbypatient"] == 600
    assert totals["benefit"] == 1400
    assert any("out-of-pocket maximum" in n["text"] for n in response["processNote"])
    assert await accumulated(repo, KEY) == (500, 600)
    # Later in the year the member pays nothing: the maximum is met.
    later = await submit(repo, claim(line("70551", 600, "2026-05-01")))
    assert line_amounts(later, 1)["paidbypatient"] == 0
    assert line_amounts(later, 1)["benefit"] == 400


async def test_preventive_visit_at_no_cost(repo: Repository) -> None:
    """99396 preventive visit, allowed 180: the plan pays all of it; deductible untouched."""
    response = await submit(repo, claim(line("99396", 220), diagnoses=("Z00.00",)))
    got = line_amounts(response, 1)
    assert (got["deductible"], got["copay"], got["coinsurance"], got["benefit"]) == (0, 0, 0, 180)
    assert await accumulated(repo, KEY) == (0, 0)


async def test_family_deductible_counts_every_member(repo: Repository) -> None:
    """Two dependants of subscriber p1 each meet 400 of their own $500 deductible; the
    family has then met 800 of $1,000, so the third member owes only 200 of deductible."""
    for pid in ("p2", "p3", "p4"):
        await repo.update(
            CTX, "Coverage", f"cov-{pid}", coverage(f"cov-{pid}", patient=f"Patient/{pid}")
        )
    for pid in ("p2", "p3"):
        await submit(
            repo, claim(line("70551", 600), patient=f"Patient/{pid}", cov=f"Coverage/cov-{pid}")
        )
    third = await submit(
        repo, claim(line("70551", 600), patient="Patient/p4", cov="Coverage/cov-p4")
    )
    got = line_amounts(third, 1)
    assert got["deductible"] == 200
    assert got["coinsurance"] == 40  # 20 % of the 200 left after the deductible


async def test_out_of_network_provider(repo: Repository) -> None:
    """The plan lists its network; Organization/elsewhere is not in it. Out of network the
    default coinsurance tier applies to the X-ray (allowed 80, all to the deductible) and,
    with no contract, the provider may bill the member the 40 over the allowed amount."""
    plan = plan_resource()
    plan["network"] = [{"reference": "Organization/clinic"}]
    await repo.update(CTX, "InsurancePlan", "test-plan", plan)
    response = await submit(repo, claim(line("71046", 120), provider="Organization/elsewhere"))
    got = line_amounts(response, 1)
    assert (got["eligible"], got["deductible"], got["memberliability"]) == (80, 80, 120)
    assert "discount" not in got
    statuses = [
        a["reason"]["coding"][0]["code"]
        for a in response["item"][0]["adjudication"]
        if a["category"]["coding"][0]["code"] == "benefitpaymentstatus"
    ]
    assert statuses == ["outofnetwork"]


async def test_coverage_copays_override_the_plan(repo: Repository) -> None:
    """The member's Coverage says office visits cost $15 (costToBeneficiary gpvisit)."""
    await repo.update(
        CTX,
        "Coverage",
        "cov1",
        coverage(
            costToBeneficiary=[
                {
                    "type": {"coding": [{"code": "gpvisit"}]},
                    "valueMoney": {"value": 15, "currency": "USD"},
                }
            ]
        ),
    )
    response = await submit(repo, claim(line("99213", 150)))
    assert line_amounts(response, 1)["copay"] == 15
    assert line_amounts(response, 1)["benefit"] == 85


async def test_docs_worked_example_on_the_default_plan(
    repo: Repository, config: AdjudicationConfig
) -> None:
    """docs/adjudication.md's example: no InsurancePlan, so the shipped default plan; no
    contracted rates, so the fee schedule (99213: 95.19 nationally in RVU26C; it was 89.18
    with the illustrative RVUs) or 80 % of charge."""
    config.rates = RateTable()
    plain = coverage()
    del plain["class"]
    await repo.update(CTX, "Coverage", "cov1", plain)
    response = await submit(
        repo,
        claim(line("99213", 150), line("80053", 300), line("80048", 100), diagnoses=("E11.9",)),
    )
    visit, panel, basic = (line_amounts(response, n) for n in (1, 2, 3))
    assert (visit["eligible"], visit["copay"], visit["benefit"]) == (95.19, 25, 70.19)
    assert (panel["eligible"], panel["deductible"], panel["benefit"]) == (240, 240, 0)
    assert basic["eligible"] == 0 and basic["noncovered"] == 100
    totals = amounts(response["total"])
    assert (totals["submitted"], totals["eligible"], totals["paidbypatient"]) == (
        550,
        335.19,
        265,
    )
    assert totals["benefit"] == 70.19


def test_contracted_rates_load_from_csv(tmp_path: Path) -> None:
    path = tmp_path / "rates.csv"
    path.write_text(
        "# comment\npayer,code,modifier,amount,effective_from,effective_to\n"
        "Organization/acme,99213,,95.50,2026-01-01,2026-12-31\n"
    )
    table = RateTable.from_csv(str(path))
    found = table.find(["Organization/acme"], "99213", [], date(2026, 5, 1))
    assert found is not None and found.amount == Decimal("95.50")
    assert table.find(["Organization/acme"], "99213", [], date(2027, 1, 1)) is None
    assert table.find(["Organization/other"], "99213", [], date(2026, 5, 1)) is None


async def test_plan_year_off_the_calendar_resets_the_deductible(repo: Repository) -> None:
    """The plan year starts 1 July (InsurancePlan.period.start): an MRI on 30 June and
    another on 1 July each meet 400 of a fresh $500 deductible."""
    plan = plan_resource()
    plan["period"] = {"start": "2025-07-01"}
    await repo.update(CTX, "InsurancePlan", "test-plan", plan)
    june = await submit(repo, claim(line("70551", 600, "2026-06-30")))
    july = await submit(repo, claim(line("70551", 600, "2026-07-01")))
    assert line_amounts(june, 1)["deductible"] == 400
    assert line_amounts(july, 1)["deductible"] == 400
    assert await accumulated(repo, "Patient/p1|test-plan|2025-07-01") == (400, 400)
    assert await accumulated(repo, "Patient/p1|test-plan|2026-07-01") == (400, 400)


async def test_plan_class_may_name_the_plan_by_identifier(repo: Repository) -> None:
    plan = {**plan_resource(), "identifier": [{"system": "urn:acme:plans", "value": "GOLD-1"}]}
    await repo.update(CTX, "InsurancePlan", "test-plan", plan)
    cov = coverage()
    cov["class"][0]["value"] = "GOLD-1"
    await repo.update(CTX, "Coverage", "cov1", cov)
    response = await submit(repo, claim(line("99213", 150)))
    assert line_amounts(response, 1)["copay"] == 30  # the test plan's, not the default $25
