"""The CMS-table rules outside the gold set: timely filing through the API on both
backends, MUE line edits, the user's charge master, the locality and the fee-schedule API
the other coding rules use."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mappings.coding.engine import code_encounter
from mappings.coding.model import CodingConfig, SourceData
from mappings.coding.tables import DATA_DIR, load_tables
from mappings.pricing import fee_schedule
from server.app import create_app
from server.config import Settings
from terminology.service import get_service
from tests.coding.cases import Case, cond, proc
from tests.coding.cases_cms import HCPCS as HCPCS_SYSTEM
from tests.coding.gold import resources
from tests.coding.test_store import drain, generate, load, search


@pytest.fixture(params=["sqlite", "mongo"])
def auto(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    """--coding auto with the Medicare timely filing window (365 days)."""
    if request.param == "mongo":
        settings = Settings(store_url=request.getfixturevalue("mongo_db_uri"))
    else:
        settings = Settings(store_url=f"sqlite:///{tmp_path / 'billable.db'}")
    settings = replace(settings, coding="auto", timely_filing_days=365)
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        yield client


def visit_on(name: str, day: date) -> Case:
    start = f"{day.isoformat()}T09:00:00Z"
    return Case(
        name,
        conditions=[cond("htn", "I10")],
        encounter={"period": {"start": start, "end": f"{day.isoformat()}T09:20:00Z"}},
    )


def test_automatic_coding_skips_encounters_past_the_timely_filing_window(
    auto: TestClient,
) -> None:
    recent = load(auto, visit_on("tf-recent", date.today() - timedelta(days=10)))
    old = load(auto, visit_on("tf-old", date.today() - timedelta(days=400)))
    drain(auto)
    assert len(search(auto, f"Claim?encounter=Encounter/{recent}")) == 1
    # The old encounter makes no claim and no Task: the coders' queue is not flooded.
    assert (
        search(auto, f"Claim?identifier=https://billable.dev/fhir/claim-for-encounter|{old}") == []
    )
    assert old in auto.app.state.coding.skipped_timely  # type: ignore[attr-defined]
    # $generate-claim still codes it, with a warning.
    claim, outcome = generate(auto, old)
    issue = next(
        i
        for i in outcome["issue"]
        if i.get("details", {}).get("coding", [{}])[0].get("code") == "timely-filing"
    )
    assert issue["severity"] == "warning" and "365 days" in issue["diagnostics"]
    assert claim["status"] == "active"


def test_provenance_names_the_cms_releases_the_claim_was_coded_with(auto: TestClient) -> None:
    eid = load(auto, visit_on("tf-prov", date(2026, 8, 3)))
    drain(auto)
    (claim,) = search(auto, f"Claim?encounter=Encounter/{eid}")
    (prov,) = search(auto, f"Provenance?target=Claim/{claim['id']}")
    named = {
        (e["what"]["identifier"]["system"], e["what"]["identifier"]["value"])
        for e in prov["entity"]
        if "identifier" in e["what"]
    }
    assert ("https://billable.dev/fhir/mpfs-rvu", "RVU26C") in named
    assert ("https://billable.dev/fhir/mue", "2026Q2") in named
    assert ("http://www.ama-assn.org/go/cpt", "RVU26C") in named
    assert ("http://hl7.org/fhir/sid/icd-10-cm", "2026") in named


def test_settings_default_to_the_medicare_window_from_the_environment() -> None:
    assert Settings().timely_filing_days == 0  # apps built by tests: no limit
    assert Settings.from_env({}).timely_filing_days == 365
    assert Settings.from_env({"BILLABLE_TIMELY_FILING_DAYS": "0"}).timely_filing_days == 0
    assert Settings.from_env({}, timely_filing_days=90).timely_filing_days == 90


def code(case: Case, config: CodingConfig | None = None, tables=None):  # type: ignore[no-untyped-def]
    r = resources(case)
    source = SourceData(
        r["encounter"], r["patient"], r["conditions"], r["procedures"], r["coverages"], True
    )
    return code_encounter(source, get_service(), tables, config)


def test_mue_line_edit_caps_the_units_of_one_line() -> None:
    """A0425 (ground mileage): MUE 250, MAI 1, a line edit: 260 miles are capped to 250."""
    case = Case(
        "mue-line",
        conditions=[cond("htn", "I10")],
        procedures=[proc(f"mi{i}", "A0425", HCPCS_SYSTEM) for i in range(260)],
    )
    result = code(case)
    mileage = next(
        i for i in result.claim["item"] if i["productOrService"]["coding"][0]["code"] == "A0425"
    )
    assert mileage["quantity"]["value"] == 250
    capped = [p for p in result.problems if p.code == "mue-capped"]
    assert capped and "MAI 1" in capped[0].message


def test_the_users_charge_master_overrides_the_fee_schedule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = tmp_path / "my-charges.csv"
    own.write_text(
        "# My clinic's charge master (version 2026.1)\n"
        "code,kind,work,pe_nonfacility,pe_facility,malpractice,charge,global_days,pctc\n"
        "99213,fixed,,,,,180.00,XXX,0\n"
    )
    monkeypatch.setenv("BILLABLE_CHARGE_MASTER", str(own))
    tables = load_tables(DATA_DIR)
    result = code(Case("own-cm", conditions=[cond("htn", "I10")]), tables=tables)
    assert result.claim["item"][0]["unitPrice"]["value"] == 180.0
    assert any(p.code == "price-charge-master" for p in result.problems)


def test_the_locality_may_be_a_state_and_locality_number_or_a_county() -> None:
    case = Case("loc", conditions=[cond("htn", "I10")])
    manhattan = code(case, CodingConfig(locality="NY-01"))
    # (1.30 x 1.064 + 1.46 x 1.162 + 0.09 x 1.586) x 33.4009
    assert manhattan.claim["item"][0]["unitPrice"]["value"] == 107.63
    county = code(case, CodingConfig(locality="NEW YORK/NEW YORK"))
    assert county.claim["item"][0]["unitPrice"]["value"] == 107.63
    unknown = code(case, CodingConfig(locality="ZZ/Nowhere"))
    assert any(p.code == "locality-unknown" and p.severity == "error" for p in unknown.problems)


def test_fee_schedule_indicators_for_other_rules() -> None:
    day = date(2026, 3, 2)
    assert fee_schedule.global_days("27447", day) == "090"
    assert fee_schedule.global_days("64484", day) == "ZZZ"
    assert fee_schedule.global_days("55700", day) is None  # not listed: never guessed
    assert fee_schedule.pctc("71046", day) == "1"
    assert fee_schedule.minor_procedure("20610", day)
    found = fee_schedule.indicators("27447", day)
    assert found is not None and found.release == "RVU26C" and found.rvu.bilateral == "1"
