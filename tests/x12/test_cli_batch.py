"""``billable x12 837`` and ``billable x12 import`` on a Synthea-shaped population, on
both backends: the fed Synthea sample (tests/fixtures/synthea-payers, through
``billable feed synthea``) is loaded and coded, every 837 the batch writes validates with
pyx12 with 0 errors, a second run sends nothing, a changed claim goes as a replacement
once the payer's claim number is known from an 835, and a cancelled one as a void."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import orjson
import pytest

from mappings.coding.service import ClaimService
from server.bundles.loader import Loader
from server.cli import main
from server.feeds.synthea import feed_files
from server.repository import Repository, system_context
from server.search.parse import parse_search
from server.storage.factory import create_store
from server.storage.port import SearchQuery
from server.x12 import reader
from tests.feeds.conftest import REFERENCE, sample_files
from tests.x12.conftest import X12_SETTINGS
from tests.x12.x12_files import Clp, Line, remit

MONGO_PATIENTS = ("Marvin195",)


@pytest.fixture(params=["sqlite", "mongo"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "mongo":
        return str(request.getfixturevalue("mongo_db_uri"))
    return f"sqlite:///{tmp_path / 'billable.db'}"


@pytest.fixture
def x12_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in X12_SETTINGS.items():
        monkeypatch.setenv(f"BILLABLE_{name.upper()}", value)


async def load_population(tmp_path: Path, store_url: str) -> None:
    out = tmp_path / "fed"
    files = sample_files(store_url)
    if store_url.startswith("mongodb"):
        # FerretDB scans without indexes: its leg loads the smallest patient (the
        # SQLite leg the whole sample); the 837 rules do not depend on the backend.
        files = [p for p in files if p.name in REFERENCE or p.name.startswith(MONGO_PATIENTS)]
    feed_files(files, out)
    store = create_store(store_url)
    await store.open()
    try:
        repo = Repository(store)
        coding = ClaimService(repo, auto=True)
        stats = await Loader(repo, system_context("x12-test"), jobs=2).load(
            sorted(out.glob("*.json"))
        )
        assert not stats.errors, stats.errors
        await coding.drain()
    finally:
        await store.close()


async def claims(store_url: str) -> list[dict[str, Any]]:
    store = create_store(store_url)
    await store.open()
    try:
        repo = Repository(store)
        parsed = parse_search(("Claim",), [("status", "active")])
        page = await repo.search(
            system_context("x12-test"), SearchQuery(("Claim",), parsed.where, count=1000)
        )
        return [orjson.loads(v.body) for v in page.versions if v.body]
    finally:
        await store.close()


async def put_claim(store_url: str, claim: dict[str, Any]) -> None:
    store = create_store(store_url)
    await store.open()
    try:
        repo = Repository(store)
        claim = {k: v for k, v in claim.items() if k != "meta"}
        await repo.update(system_context("x12-test"), "Claim", claim["id"], claim)
    finally:
        await store.close()


def run_837(
    store_url: str, out: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[list[Path], str]:
    before = set(out.glob("*.x12")) if out.exists() else set()
    assert main(["x12", "837", "--store", store_url, str(out)]) == 0
    err = capsys.readouterr().err
    return sorted(set(out.glob("*.x12")) - before), err


def segments(path: Path, segment_id: str) -> list[list[str]]:
    text = path.read_text().replace("\n", "")
    return [s.split("*") for s in text.split("~") if s.startswith(segment_id + "*")]


def test_a_synthea_population_batch_validates_and_is_sent_once(
    tmp_path: Path, store_url: str, x12_env: None, capsys: pytest.CaptureFixture[str]
):
    asyncio.run(load_population(tmp_path, store_url))
    out = tmp_path / "out"
    assert main(["x12", "837", "--store", store_url, "--payer", "NO-SUCH-PAYER", str(out)]) == 0
    assert "0 claim(s) in 0 file(s)" in capsys.readouterr().err  # --payer filters
    files, summary = run_837(store_url, out, capsys)
    assert files, summary
    sent = 0
    for path in files:
        assert [p.text() for p in reader.validate(path.read_text())] == [], path.name
        sent += len(segments(path, "CLM"))
    assert f"{sent} claim(s) in {len(files)} file(s)" in summary
    # Every claim the batch did not send is named with what it lacks.
    for line in summary.splitlines()[1:]:
        assert "missing" in line or "837 form" in line or "self-pay" in line, line
    control_numbers = [int(segments(p, "ISA")[0][13]) for p in files]
    assert len(set(control_numbers)) == len(control_numbers)

    again, summary = run_837(store_url, out, capsys)
    assert again == [] and f"0 claim(s) in 0 file(s); {sent} already sent unchanged" in summary

    # A changed claim is a replacement (7), which needs the payer's claim number (REF*F8).
    first_clm = segments(files[0], "CLM")[0]
    pcn = first_clm[1]
    claim = next(c for c in asyncio.run(claims(store_url)) if c["id"].replace("-", "")[:20] == pcn)
    claim["item"][0]["net"]["value"] = claim["item"][0]["net"]["value"] + 1
    asyncio.run(put_claim(store_url, claim))
    refused, summary = run_837(store_url, out, capsys)
    assert refused == [] and "2300 REF02 (payer claim control number" in summary
    charge = D(str(claim["item"][0]["net"]["value"]))
    code = claim["item"][0]["productOrService"]["coding"][0]["code"]
    era = tmp_path / "era.835"
    era.write_text(
        remit([Clp(pcn, "1", charge, charge, D(0), "PAYER-ICN-77", [Line(code, charge, charge)])])
    )
    assert main(["x12", "import", "--store", store_url, str(era)]) == 0
    assert "Created ClaimResponse/" in capsys.readouterr().out
    [replacement], _ = run_837(store_url, out, capsys)
    assert segments(replacement, "CLM")[0][5].endswith(":7")
    assert ["REF", "F8", "PAYER-ICN-77"] in segments(replacement, "REF")
    assert reader.validate(replacement.read_text()) == []

    # A cancelled claim that was sent goes once as a void (8).
    asyncio.run(put_claim(store_url, {**claim, "status": "cancelled"}))
    [void], _ = run_837(store_url, out, capsys)
    assert segments(void, "CLM")[0][5].endswith(":8")
    assert run_837(store_url, out, capsys)[0] == []


def test_import_refuses_a_malformed_file_and_posts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    url = f"sqlite:///{tmp_path / 'b.db'}"
    bad = tmp_path / "bad.835"
    bad.write_text(
        remit([Clp("X", "1", D(10), D(10), D(0), "I", [Line("99213", D(10), D(10))])]).replace(
            "CLP*X*1*", "CLP*X*ZZZ*"
        )
    )
    assert main(["x12", "import", "--store", url, str(bad)]) == 1
    err = capsys.readouterr().err
    assert "segment CLP" in err and "CLP02" in err and "nothing was posted" in err
