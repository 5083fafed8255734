"""`billable code` and `billable load --code`: coding what is already stored.

The fed Synthea sample (tests/fixtures/synthea-payers through `billable feed synthea`)
is loaded with no coding trigger, as `billable load` does, then coded by the command's
code path; the claims must be the ones the HTTP path would make, adjudicated when clean
and insured, and a second run must write nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from mappings.adjudication.service import set_config
from mappings.coding.service import system_context
from server.bundles.loader import Loader
from server.coding_cli import code_encounters, stored_encounters
from server.feeds.synthea import feed_files
from server.repository import Repository
from server.search.parse import parse_search
from server.storage.factory import create_store
from server.storage.port import SearchQuery
from tests.feeds.conftest import sample_files

SAMPLE = Path(__file__).resolve().parent.parent / "fixtures" / "synthea-payers"


@pytest.fixture(autouse=True)
def shipped_config() -> None:
    set_config(None)


@pytest.fixture
def fed(tmp_path: Path) -> list[Path]:
    feed_files([SAMPLE], tmp_path / "fed")
    return sorted((tmp_path / "fed").glob("*.json"))


@pytest.fixture(params=["sqlite", "mongo"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "mongo":
        return str(request.getfixturevalue("mongo_db_uri"))
    return f"sqlite:///{tmp_path / 'billable.db'}"


async def _all(
    repo: Repository, rtype: str, pairs: list[tuple[str, str]] | None = None
) -> list[Any]:
    parsed = parse_search((rtype,), pairs or [], strict=True)
    page = await repo.search(system_context(), SearchQuery((rtype,), parsed.where, count=500))
    return [orjson.loads(v.body) for v in page.versions if v.body is not None]


async def test_code_codes_each_stored_encounter_once_and_a_second_run_writes_nothing(
    tmp_path: Path, store_url: str
) -> None:
    feed_files(sample_files(store_url), tmp_path / "fed-backend")
    fed = sorted((tmp_path / "fed-backend").glob("*.json"))
    store = create_store(store_url)
    await store.open()
    try:
        repo = Repository(store)
        loaded = await Loader(repo, system_context(), jobs=2).load(fed)
        assert not loaded.errors
        assert await _all(repo, "Claim") == []  # a load alone codes nothing

        ids = await stored_encounters(repo, system_context(), None, None)
        assert len(ids) == len(await _all(repo, "Encounter", [("status", "finished")])) > 0
        first = await code_encounters(repo, ids)
        assert (first.seen, first.coded, first.unchanged, first.failed) == (
            len(ids),
            len(ids),
            0,
            0,
        )
        claims = await _all(repo, "Claim")
        assert len(claims) == len(ids)
        insured = [
            c
            for c in claims
            if c["status"] == "active" and c["insurance"][0]["coverage"].get("reference")
        ]
        eobs = await _all(repo, "ExplanationOfBenefit")
        assert first.adjudicated == len(eobs) == len(insured) > 0

        second = await code_encounters(repo, ids)
        assert (second.seen, second.coded, second.unchanged) == (len(ids), 0, len(ids))
        assert second.adjudicated == 0
        assert len(await _all(repo, "Claim")) == len(claims)
        assert len(await _all(repo, "ExplanationOfBenefit")) == len(eobs)
    finally:
        await store.close()


async def test_patient_and_since_pick_only_that_patients_encounters_from_that_date(
    fed: list[Path], tmp_path: Path
) -> None:
    store = create_store(f"sqlite:///{tmp_path / 'filters.db'}")
    await store.open()
    try:
        repo = Repository(store)
        await Loader(repo, system_context(), jobs=2).load(fed)
        ctx = system_context()
        encounters = {e["id"]: e for e in await _all(repo, "Encounter")}
        patient = "8ffab79d-f545-1c67-9c93-30955daad494"  # Antwan357, 15 encounters
        mine = await stored_encounters(repo, ctx, None, patient)
        assert mine and all(
            encounters[i]["subject"]["reference"] == f"Patient/{patient}" for i in mine
        )
        assert len(mine) < len(encounters)
        since = date(2026, 9, 1)
        recent = await stored_encounters(repo, ctx, since, f"Patient/{patient}")
        assert recent and set(recent) < set(mine)
        assert all(encounters[i]["period"]["start"][:10] >= "2026-09-01" for i in recent)
        stats = await code_encounters(repo, recent, adjudicate=False)
        assert stats.coded == len(recent)
        assert len(await _all(repo, "Claim")) == len(recent)
        assert await _all(repo, "ClaimResponse") == []  # --adjudication manual
    finally:
        await store.close()


async def test_code_leaves_encounters_past_the_timely_filing_window_alone(
    fed: list[Path], tmp_path: Path
) -> None:
    """As the automatic trigger does (42 CFR 424.44: 12 months for Medicare)."""
    from dataclasses import fields

    from mappings.coding.model import CodingConfig

    if "timely_filing_days" not in {f.name for f in fields(CodingConfig)}:
        pytest.skip("this engine has no timely filing window (CMS tables work)")
    store = create_store(f"sqlite:///{tmp_path / 'window.db'}")
    await store.open()
    try:
        repo = Repository(store)
        await Loader(repo, system_context(), jobs=2).load(fed)
        ids = await stored_encounters(repo, system_context(), None, None)
        encounters = {e["id"]: e for e in await _all(repo, "Encounter")}
        days = (date.today() - date(2026, 1, 1)).days  # window: from 2026-01-01 on
        older = {i for i in ids if encounters[i]["period"]["start"][:10] < "2026-01-01"}
        assert older and older != set(ids)
        config = CodingConfig(timely_filing_days=days)  # type: ignore[call-arg]
        stats = await code_encounters(repo, ids, config, adjudicate=False)
        assert stats.skipped_window == len(older)
        assert stats.coded == len(ids) - len(older)
        coded = {c["identifier"][0]["value"] for c in await _all(repo, "Claim")}
        assert not coded & older
    finally:
        await store.close()


def _cli(*args: str, store: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args, "--store", store, "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
        # No filing window: the sample's dates must not age out of the test.
        env={**os.environ, "BILLABLE_ADJUDICATION": "auto", "BILLABLE_TIMELY_FILING_DAYS": "0"},
    )


def test_load_with_code_then_code_again_reports_everything_up_to_date(
    fed: list[Path], tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'cli.db'}"
    loaded = _cli("load", "--code", str(fed[0].parent), store=store)
    assert loaded.returncode == 0, loaded.stderr
    assert "billable load: 7 of 7 files loaded" in loaded.stderr
    assert "billable code: 25 encounters seen, 25 coded" in loaded.stderr
    assert "filing window" in loaded.stderr
    again = _cli("code", store=store)
    assert again.returncode == 0, again.stderr
    assert "25 encounters seen, 0 coded (claim written), 25 already up to date" in again.stderr
    one = _cli("code", "--patient", "2b617b6e-0462-444d-0672-89bcd64249f1", store=store)
    assert "billable code: 1 encounters seen" in one.stderr
