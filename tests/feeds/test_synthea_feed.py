"""`billable feed synthea`: Synthea's payers become Coverage; Synthea's claims go away.

The sample (tests/fixtures/synthea-payers) is real Synthea output trimmed to five
patients: Medicaid, Medicare, no insurance, Cigna then Aetna, UnitedHealthcare.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from mappings.adjudication.auto import AutoAdjudicator
from mappings.adjudication.service import set_config
from mappings.coding.service import ClaimService, system_context
from server.bundles.loader import Loader
from server.feeds.synthea import (
    NO_INSURANCE,
    SOPT,
    FeedReport,
    feed_files,
    payer_spans,
)
from server.repository import Repository
from server.search.parse import parse_search
from server.storage.factory import create_store
from server.storage.port import SearchQuery
from tests.feeds.conftest import REFERENCE, SAMPLE, sample_files


def resources(path: Path, rtype: str) -> list[dict[str, Any]]:
    bundle = orjson.loads(path.read_bytes())
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def patient_file(out: Path, prefix: str) -> Path:
    return next(out.glob(f"{prefix}*.json"))


@pytest.fixture(autouse=True)
def shipped_config() -> None:
    """The shipped adjudication configuration (default plan, fee schedule)."""
    set_config(None)


def test_a_payer_change_ends_the_old_coverage_the_day_before_the_new_payers_first_day() -> None:
    from collections import Counter

    days = {
        date(2026, 1, 5): Counter({"Cigna Health": 2}),
        date(2026, 3, 1): Counter({"Cigna Health": 1}),
        date(2026, 9, 10): Counter({"Aetna": 1}),
        date(2026, 9, 20): Counter({NO_INSURANCE: 1}),
    }
    spans = payer_spans(days)
    assert [(s.payer, s.start, s.end, s.encounters) for s in spans] == [
        ("Cigna Health", date(2026, 1, 5), date(2026, 9, 9), 3),
        ("Aetna", date(2026, 9, 10), date(2026, 9, 19), 1),
        (NO_INSURANCE, date(2026, 9, 20), None, 1),
    ]


def test_on_a_day_billed_to_two_payers_the_one_that_billed_more_wins() -> None:
    from collections import Counter

    spans = payer_spans({date(2026, 2, 2): Counter({"Medicaid": 1, "Medicare": 2})})
    assert [s.payer for s in spans] == ["Medicare"]


def test_feed_drops_synthea_claims_and_eobs_and_keeps_every_other_resource(
    fed: tuple[Path, FeedReport],
) -> None:
    out, report = fed
    assert report.files == 7 and report.patients == 5
    for path in SAMPLE.glob("*.json"):
        before = orjson.loads(path.read_bytes())["entry"]
        after = orjson.loads((out / path.name).read_bytes())["entry"]
        kept = [
            e
            for e in before
            if e["resource"]["resourceType"] not in ("Claim", "ExplanationOfBenefit", "Provenance")
        ]
        added = [e for e in after if e["resource"]["resourceType"] in ("Coverage", "Organization")]
        if path.name in REFERENCE:
            assert after == before  # hospitals and practitioners pass as they are
            continue
        assert not resources(out / path.name, "Claim")
        assert not resources(out / path.name, "ExplanationOfBenefit")
        assert len(after) == len(kept) + len(added)
        assert not resources(out / path.name, "Provenance")  # server-written (issue 13)
    assert report.claims_dropped == report.eobs_dropped > 0


def test_each_payer_becomes_a_typed_coverage_for_the_dates_it_paid(
    fed: tuple[Path, FeedReport],
) -> None:
    out, _report = fed
    [medicare] = resources(patient_file(out, "Alfredia958"), "Coverage")
    assert medicare["type"]["coding"] == [{"system": SOPT, "code": "1", "display": "MEDICARE"}]
    assert medicare["payor"][0]["display"] == "Medicare"
    assert medicare["status"] == "active" and "end" not in medicare["period"]
    [medicaid] = resources(patient_file(out, "Marvin195"), "Coverage")
    assert medicaid["type"]["coding"][0]["code"] == "2"
    cigna, aetna = sorted(
        resources(patient_file(out, "Antwan357"), "Coverage"), key=lambda c: c["period"]["start"]
    )
    assert (cigna["type"]["text"], aetna["type"]["text"]) == ("Cigna Health", "Aetna")
    assert cigna["type"]["coding"][0]["code"] == "5"  # private health insurance
    assert cigna["period"]["end"] < aetna["period"]["start"]
    # No insurance: no Coverage, so the engine codes the encounters as self-pay.
    assert resources(patient_file(out, "Jackie93"), "Coverage") == []


def test_payers_are_shared_organizations_with_fixed_ids_and_a_rerun_writes_the_same_bytes(
    fed: tuple[Path, FeedReport], tmp_path: Path
) -> None:
    out, report = fed
    orgs: dict[str, dict[str, Any]] = {}
    for path in out.glob("*_*.json"):
        bundle = orjson.loads(path.read_bytes())
        for entry in bundle["entry"]:
            if entry["resource"]["resourceType"] == "Organization":
                assert entry["request"] == {
                    "method": "PUT",
                    "url": f"Organization/{entry['resource']['id']}",
                }
                assert orgs.setdefault(entry["resource"]["id"], entry) == entry
    assert set(orgs) == {
        "synthea-payer-medicare",
        "synthea-payer-medicaid",
        "synthea-payer-cigna-health",
        "synthea-payer-aetna",
        "synthea-payer-unitedhealthcare",
    }
    again = subprocess.run(
        [sys.executable, "-m", "server.cli", "feed", "synthea", str(SAMPLE), str(tmp_path / "b")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert "self-pay (NO_INSURANCE)" in again.stderr and "Medicare" in again.stderr
    for path in out.glob("*.json"):
        assert (tmp_path / "b" / path.name).read_bytes() == path.read_bytes()
    assert report.encounters_by_payer[NO_INSURANCE] > 0


async def _search(repo: Repository, rtype: str, pairs: list[tuple[str, str]]) -> list[Any]:
    parsed = parse_search((rtype,), pairs, strict=True)
    page = await repo.search(system_context(), SearchQuery((rtype,), parsed.where, count=500))
    return [orjson.loads(v.body) for v in page.versions if v.body is not None]


async def test_fed_population_loads_codes_and_adjudicates_with_a_payer_mix_on_each_backend(
    tmp_path: Path, store_url: str
) -> None:
    out = tmp_path / "fed-backend"
    feed_files(sample_files(store_url), out)
    files = sorted(out.glob("*.json"))
    full = not store_url.startswith("mongodb")
    store = create_store(store_url)
    await store.open()
    try:
        repo = Repository(store)
        coding = ClaimService(repo, auto=True)
        adjudication = AutoAdjudicator(repo)
        stats = await Loader(repo, system_context(), jobs=2).load(files)
        assert not stats.errors, stats.errors
        await coding.drain()
        await adjudication.drain()
        assert not coding.failures and not adjudication.failures

        claims = await _search(repo, "Claim", [])
        eobs = await _search(repo, "ExplanationOfBenefit", [])
        responses = await _search(repo, "ClaimResponse", [])
        # Only Billable's own claims: every one names the encounter it codes.
        assert claims and all(
            c["identifier"][0]["system"] == "https://billable.dev/fhir/claim-for-encounter"
            for c in claims
        )
        insured = [
            c
            for c in claims
            if c["status"] == "active" and c["insurance"][0]["coverage"].get("reference")
        ]
        self_pay = [c for c in claims if not c["insurance"][0]["coverage"].get("reference")]
        assert len(responses) == len(eobs) == len(insured)
        assert all(r["outcome"] == "complete" for r in responses)
        payers = {e["insurer"]["display"] for e in eobs}
        expected = {"Medicare", "Medicaid", "UnitedHealthcare"}
        assert expected | ({"Cigna Health", "Aetna"} if full else set()) == payers
        assert all(
            e["insurer"]["reference"].startswith("Organization/synthea-payer-") for e in eobs
        )
        assert self_pay  # the uninsured patient's visits
        # One Organization per payer however many patients it covers.
        medicare = await _search(repo, "Organization", [("name", "Medicare")])
        assert [o["id"] for o in medicare] == ["synthea-payer-medicare"]

        # Loading the same feed again changes nothing and adjudicates nothing twice.
        again = await Loader(repo, system_context(), jobs=2).load(files)
        await coding.drain()
        await adjudication.drain()
        assert again.created == 0
        assert len(await _search(repo, "Coverage", [])) == (5 if full else 3)
        assert len(await _search(repo, "ExplanationOfBenefit", [])) == len(eobs)
    finally:
        await store.close()
