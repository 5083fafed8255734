"""Resubmission, replacement claims, and accumulators under concurrency."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import orjson

from mappings.adjudication import adjudicate_claim
from mappings.adjudication.service import accumulated
from server.repository import Repository
from tests.adjudication.conftest import CTX, claim, line, line_amounts

KEY = "Patient/p1|test-plan|2026"


async def test_resubmitting_the_same_version_changes_nothing(repo: Repository) -> None:
    created = await repo.create(CTX, "Claim", claim(line("70551", 600)))
    assert created.version is not None
    first = await adjudicate_claim(repo, CTX, created.version.id)
    again = await adjudicate_claim(repo, CTX, created.version.id)
    assert first.created and not again.created
    assert again.claim_response.id == first.claim_response.id
    assert again.claim_response.version == 1
    assert await accumulated(repo, KEY) == (400, 400)


async def test_replacement_claim_reverses_the_original(repo: Repository) -> None:
    """The original MRI applied 400 of deductible; its replacement (a cheaper X-ray,
    allowed 80) reverses those 400 and applies its own 80."""
    created = await repo.create(CTX, "Claim", claim(line("70551", 600)))
    assert created.version is not None
    original = await adjudicate_claim(repo, CTX, created.version.id)
    assert await accumulated(repo, KEY) == (400, 400)
    prior = {
        "claim": {"reference": f"Claim/{created.version.id}"},
        "relationship": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/related-claim-relationship",
                    "code": "prior",
                }
            ]
        },
    }
    replacement = await repo.create(CTX, "Claim", claim(line("71046", 120), related=[prior]))
    assert replacement.version is not None
    result = await adjudicate_claim(repo, CTX, replacement.version.id)
    assert result.claim_response.body is not None
    assert line_amounts(orjson.loads(result.claim_response.body), 1)["deductible"] == 80
    assert await accumulated(repo, KEY) == (80, 80)
    cancelled = await repo.read(CTX, "ClaimResponse", original.claim_response.id)
    assert cancelled.body is not None and orjson.loads(cancelled.body)["status"] == "cancelled"
    # Replaying the replacement (or the original) reverses nothing twice.
    await adjudicate_claim(repo, CTX, replacement.version.id)
    await adjudicate_claim(repo, CTX, created.version.id)
    assert await accumulated(repo, KEY) == (80, 80)


async def test_new_version_of_a_claim_replaces_the_previous_one(repo: Repository) -> None:
    created = await repo.create(CTX, "Claim", claim(line("70551", 600)))
    assert created.version is not None
    cid = created.version.id
    await adjudicate_claim(repo, CTX, cid)
    await repo.update(CTX, "Claim", cid, {**claim(line("71046", 120)), "id": cid})
    result = await adjudicate_claim(repo, CTX, cid)
    assert result.created
    assert await accumulated(repo, KEY) == (80, 80)


async def test_twenty_concurrent_claims_apply_exactly_the_deductible(repo: Repository) -> None:
    """20 MRIs (allowed 400 each) at once: 500 of deductible in total, never more; every
    claim sees the deductible left by those committed before it."""
    ids = []
    for i in range(20):
        created = await repo.create(CTX, "Claim", claim(line("70551", 600, f"2026-03-{i + 1:02d}")))
        assert created.version is not None
        ids.append(created.version.id)
    results = await asyncio.gather(*(adjudicate_claim(repo, CTX, cid) for cid in ids))
    deductibles = Decimal(0)
    patient = Decimal(0)
    for result in results:
        assert result.claim_response.body is not None
        got = line_amounts(orjson.loads(result.claim_response.body), 1)
        deductibles += Decimal(str(got["deductible"]))
        patient += Decimal(str(got["paidbypatient"]))
    assert deductibles == 500
    # 500 deductible + 20 % of (20 x 400 - 500) = 500 + 1500 = 2000, capped at the $1,500 OOP.
    assert patient == 1500
    assert await accumulated(repo, KEY) == (500, 1500)


async def test_two_servers_on_one_store_apply_exactly_the_deductible(
    repo: Repository,
) -> None:
    """Two repositories on the same database act as two server processes: their member
    locks are separate, so the accumulators' optimistic versions (VersionConflict and a
    retry of the whole adjudication) are what keeps the deductible exact."""
    other = Repository(repo._store)  # a second process on the same database
    ids = []
    for i in range(10):
        created = await repo.create(CTX, "Claim", claim(line("70551", 600, f"2026-04-{i + 1:02d}")))
        assert created.version is not None
        ids.append(created.version.id)
    results = await asyncio.gather(
        *(adjudicate_claim(repo if i % 2 else other, CTX, cid) for i, cid in enumerate(ids))
    )
    total = Decimal(0)
    for result in results:
        assert result.claim_response.body is not None
        total += Decimal(
            str(line_amounts(orjson.loads(result.claim_response.body), 1)["deductible"])
        )
    assert total == 500
    assert (await accumulated(repo, KEY))[0] == 500


async def test_cancelling_a_claim_reverses_its_accumulators(repo: Repository) -> None:
    created = await repo.create(CTX, "Claim", claim(line("70551", 600)))
    assert created.version is not None
    cid = created.version.id
    await adjudicate_claim(repo, CTX, cid)
    assert await accumulated(repo, KEY) == (400, 400)
    await repo.update(
        CTX, "Claim", cid, {**claim(line("70551", 600)), "id": cid, "status": "cancelled"}
    )
    voided = await adjudicate_claim(repo, CTX, cid)
    assert voided.claim_response.body is not None
    assert orjson.loads(voided.claim_response.body)["status"] == "cancelled"
    assert await accumulated(repo, KEY) == (0, 0)
    # Cancelling again changes nothing; the same services may now be billed anew.
    await adjudicate_claim(repo, CTX, cid)
    assert await accumulated(repo, KEY) == (0, 0)
    again = await repo.create(CTX, "Claim", claim(line("70551", 600)))
    assert again.version is not None
    result = await adjudicate_claim(repo, CTX, again.version.id)
    assert result.claim_response.body is not None
    assert line_amounts(orjson.loads(result.claim_response.body), 1)["deductible"] == 400


async def test_a_claim_without_a_known_coverage_gets_an_error_response(
    repo: Repository,
) -> None:
    created = await repo.create(CTX, "Claim", claim(line("70551", 600), cov="Coverage/nope"))
    assert created.version is not None
    result = await adjudicate_claim(repo, CTX, created.version.id)
    assert result.claim_response.body is not None
    body = orjson.loads(result.claim_response.body)
    assert body["outcome"] == "error"
    assert "Coverage/nope" in body["disposition"]
    assert result.explanation_of_benefit is None
    assert await accumulated(repo, KEY) == (0, 0)
