"""Timely filing: a claim the payer receives past the plan's limit is denied CARC 29."""

from __future__ import annotations

from server.repository import Repository
from tests.adjudication.conftest import CTX, claim, denial, line, plan_resource, submit


async def test_a_claim_received_past_the_default_12_months_is_denied_29(
    repo: Repository,
) -> None:
    late = claim(line("99213", 150, "2024-11-04"))
    late["created"] = "2025-11-05"  # 366 days after the date of service
    response = await submit(repo, late)
    carc, text = denial(response, 1) or ("", "")
    assert carc == "29"
    assert "366 days later; the plan allows 365" in text


async def test_a_claim_received_within_the_limit_is_not_denied_29(repo: Repository) -> None:
    on_time = claim(line("99213", 150, "2024-11-04"))
    on_time["created"] = "2025-11-04"  # 365 days: still in time
    response = await submit(repo, on_time)
    assert (denial(response, 1) or ("",))[0] != "29"


async def test_the_plan_sets_its_own_timely_filing_limit(repo: Repository) -> None:
    plan = plan_resource()
    plan["plan"][0]["specificCost"][0]["benefit"].append(
        {
            "type": {"coding": [{"code": "timely-filing"}]},
            "cost": [{"type": {"text": "days"}, "value": {"value": 90, "unit": "d"}}],
        }
    )
    await repo.update(CTX, "InsurancePlan", "test-plan", plan)
    late = claim(line("99213", 150, "2026-03-02"))
    late["created"] = "2026-06-15"  # 105 days
    response = await submit(repo, late)
    carc, text = denial(response, 1) or ("", "")
    assert carc == "29" and "the plan allows 90" in text
