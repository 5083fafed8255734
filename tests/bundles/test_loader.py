"""``billable load``: Bundle and NDJSON files into the store, in process, re-runnable."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from server.bundles.loader import LOADER_BASE_URL, Loader, LoadStats, expand_paths, summary
from server.cli import main
from server.repository import Repository, RequestContext
from server.storage.factory import create_store
from server.storage.port import HistoryQuery, Store
from tests.bundles.conftest import MRN, SYNTHEA, encounter, patient


@pytest.fixture(params=["sqlite", "mongo"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "mongo":
        return str(request.getfixturevalue("mongo_db_uri"))
    return f"sqlite:///{tmp_path / 'billable.db'}"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = create_store(store_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def load(store: Store, *paths: Path, jobs: int = 4) -> LoadStats:
    ctx = RequestContext(base_url=LOADER_BASE_URL)
    loader = Loader(Repository(store), ctx, jobs=jobs, chunk=2)
    return await loader.load(list(expand_paths(paths)))


async def versions(store: Store) -> int:
    page = await store.history(HistoryQuery(count=1000))
    return len(page.versions)


def write_ndjson(path: Path, lines: list[object]) -> Path:
    path.write_bytes(b"\n".join(orjson.dumps(x) if not isinstance(x, bytes) else x for x in lines))
    return path


async def test_ndjson_lines_load_and_reloading_changes_nothing(store: Store, tmp_path: Path):
    ndjson = write_ndjson(
        tmp_path / "Patient.ndjson",
        [
            patient("1"),  # conditional create on identifier
            patient("2", id="file-id-2"),  # conditional update on identifier, keeps its id
            patient(id="file-id-3"),  # PUT by id
            encounter("Patient/file-id-2", id="enc-1"),
        ],
    )
    first = await load(store, ndjson)
    assert (first.resources, first.created, first.errors) == (4, 4, [])
    assert (await store.read("Patient", "file-id-2")) is not None
    enc = await store.read("Encounter", "enc-1")
    assert enc is not None and b'"Patient/file-id-2"' in (enc.body or b"")
    before = await versions(store)

    again = await load(store, ndjson)
    assert (again.resources, again.created, again.errors) == (4, 0, [])
    assert await versions(store) == before == 4


async def test_bad_ndjson_lines_are_reported_with_their_line(store: Store, tmp_path: Path):
    ndjson = write_ndjson(
        tmp_path / "mixed.ndjson",
        [patient("10"), b"{not json", patient("11", birthDate="soon"), patient("12")],
    )
    stats = await load(store, ndjson)
    assert stats.resources == 2
    assert [(e.line, "JSON" in e.message or "birthDate" in e.where) for e in stats.errors] == [
        (2, True),
        (3, True),
    ]
    assert str(stats.errors[0]).startswith(f"{ndjson}:2: ")


async def test_a_failed_file_does_not_stop_the_others(store: Store, tmp_path: Path):
    broken = tmp_path / "a-broken.json"
    broken.write_bytes(
        orjson.dumps(
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {
                        "fullUrl": "urn:uuid:11111111-0000-4000-8000-000000000001",
                        "resource": patient("20", birthDate="never"),
                        "request": {"method": "POST", "url": "Patient"},
                    }
                ],
            },
            option=orjson.OPT_INDENT_2,
        )
    )
    good = write_ndjson(tmp_path / "b-good.ndjson", [patient("21")])
    stats = await load(store, broken, good)
    assert stats.files_done == 2 and stats.files_failed == 1
    assert stats.resources == 1
    (error,) = stats.errors
    assert error.path == str(broken) and error.line == 6  # the line of its fullUrl
    assert "Bundle.entry[0].resource.birthDate" in error.where
    assert "1 with errors" in summary(stats, 1.0)


async def test_synthea_directory_loads_in_dependency_order_and_reloads_idempotently(
    tmp_path: Path,
):
    # The embedded store only: this is about ordering and content, and takes minutes on
    # FerretDB; the other loader tests cover both backends.
    store = create_store(f"sqlite:///{tmp_path / 'synthea.db'}")
    await store.open()
    try:
        await _load_synthea_twice(store, tmp_path)
    finally:
        await store.close()


async def _load_synthea_twice(store: Store, tmp_path: Path) -> None:
    # Patient bundles sort before the hospital/practitioner bundles they refer to.
    folder = tmp_path / "synthea"
    shutil.copytree(SYNTHEA, folder)
    first = await load(store, folder)
    assert first.errors == []
    assert first.files_done == 4 and first.created == first.resources == 710
    again = await load(store, folder)
    assert again.errors == [] and again.created == 0 and again.resources == 710
    assert await versions(store) == 710


def test_load_command_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    ndjson = write_ndjson(tmp_path / "p.ndjson", [patient("30"), patient("31")])
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["load", "--store", db, "--quiet", str(ndjson)]) == 0
    err = capsys.readouterr().err
    assert "1 of 1 files loaded" in err and "2 resources (2 created" in err
    bad = write_ndjson(tmp_path / "bad.ndjson", [b"[]"])
    assert main(["load", "--store", db, "--quiet", str(bad)]) == 1
    assert f"{bad}:1: not a FHIR resource" in capsys.readouterr().err


def test_identifier_criteria_are_used_for_conditional_creates():
    from server.bundles.loader import ndjson_entry

    entry = ndjson_entry(patient("40"))
    assert entry["request"] == {
        "method": "POST",
        "url": "Patient",
        "ifNoneExist": f"identifier={MRN}|40",
    }


async def test_bundles_whose_references_are_not_there_yet_are_retried_at_the_end(
    tmp_path: Path,
):
    folder = tmp_path / "renamed"
    folder.mkdir()
    # Without Synthea's names the reference data sorts after the patients that need it.
    shutil.copy(SYNTHEA / "hospitalInformation.json", folder / "zz-hospitals.json")
    shutil.copy(SYNTHEA / "practitionerInformation.json", folder / "zz-practitioners.json")
    for patient_file in SYNTHEA.glob("L*.json"):
        shutil.copy(patient_file, folder / patient_file.name)
    store = create_store(f"sqlite:///{tmp_path / 'retry.db'}")
    await store.open()
    try:
        # One file at a time: the patient bundle surely comes first, and fails.
        stats = await load(store, folder, jobs=1)
    finally:
        await store.close()
    assert stats.errors == []
    assert stats.files_done == 3 and stats.resources == 232 + 39 + 38
