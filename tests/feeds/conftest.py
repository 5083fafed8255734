"""Fixtures for the feed tests: the Synthea sample with payers, fed once per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.feeds.synthea import FeedReport, feed_files

SAMPLE = Path(__file__).resolve().parent.parent / "fixtures" / "synthea-payers"
REFERENCE = ("hospitalInformation.json", "practitionerInformation.json")
# On FerretDB (slow to index a patient's history) the backend legs load the four small
# patients: Medicare, Medicaid, UnitedHealthcare and the uninsured one.
SMALL = ("Marvin195", "Alfredia958", "Maragret485", "Jackie93")


def sample_files(backend_url: str) -> list[Path]:
    """The sample's files for a backend leg: all of them on SQLite, SMALL on MongoDB."""
    files = sorted(SAMPLE.glob("*.json"))
    if backend_url.startswith("mongodb"):
        files = [p for p in files if p.name in REFERENCE or p.name.startswith(SMALL)]
    return files


@pytest.fixture
def fed(tmp_path: Path) -> tuple[Path, FeedReport]:
    """The sample as `billable feed synthea` writes it, and the feed's report."""
    out = tmp_path / "fed"
    return out, feed_files([SAMPLE], out)


@pytest.fixture(params=["sqlite", "mongo"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "mongo":
        return str(request.getfixturevalue("mongo_db_uri"))
    return f"sqlite:///{tmp_path / 'billable.db'}"
