"""Loading a release adds a version beside the old ones, also while the server runs."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from terminology import cli, systems
from terminology.service import TerminologyService

from .conftest import FIXTURES, make_app, parameters


def test_cli_load_adds_a_fiscal_year_that_a_running_server_picks_up(tmp_path: Path) -> None:
    service = TerminologyService(data_dir=tmp_path, watch_interval=0)
    client = TestClient(make_app(service))
    params = {"url": systems.ICD10CM, "code": "E11.B", "date": "2026-11-02"}
    before = parameters(client.get("/fhir/CodeSystem/$validate-code", params=params).json())
    assert before["result"] is False

    status = cli.main(
        [
            "load",
            "icd10cm",
            str(FIXTURES / "icd10cm-tabular-excerpt.xml"),
            "--data-dir",
            str(tmp_path),
        ]
    )
    assert status == 0
    after = parameters(client.get("/fhir/CodeSystem/$validate-code", params=params).json())
    assert after["result"] is True and after["version"] == "2027"
    # A claim for a past date of service is still coded with the code set of that date.
    past = {"url": systems.ICD10CM, "code": "E11.9", "date": "2026-01-15"}
    assert (
        parameters(client.get("/fhir/CodeSystem/$validate-code", params=past).json())["version"]
        == "2026"
    )


def test_reload_is_explicit_when_watching_is_slow(tmp_path: Path) -> None:
    service = TerminologyService(data_dir=tmp_path, watch_interval=3600)
    cli.load(
        "hcpcs",
        FIXTURES / "hcpcs-quarterly-excerpt.csv",
        "2026Q1",
        date(2026, 1, 1),
        data_dir=tmp_path,
    )
    assert service.code_system(systems.HCPCS, date(2026, 2, 1))[0].meta.version != "2026Q1"
    service.reload()
    assert service.code_system(systems.HCPCS, date(2026, 2, 1))[0].meta.version == "2026Q1"
    # a code terminated in the file is no longer valid after its termination date
    result = service.validate_code("hcpcs", "G0102", date(2026, 2, 1))
    assert result.reason == "not-effective" and "terminated" in result.message


def test_every_kind_loads_from_its_official_format(tmp_path: Path) -> None:
    loads = [
        ["icd10cm-order", "icd10cm-order-excerpt.txt", "--version", "2027"],
        ["icd10pcs", "icd10pcs-order-excerpt.txt", "--version", "2027"],
        ["hcpcs", "hcpcs-anweb-excerpt.txt", "--version", "2027Q1", "--effective", "2027-01-01"],
        ["cpt", "cpt-licensed-excerpt.txt", "--version", "2027", "--effective", "2027-01-01"],
        ["snomed", "rf2"],
        ["snomed-icd10cm-map", "der2_iisssciRefset_ExtendedMapSnapshot_excerpt.txt"],
        ["ncci-ptp", "ncci-ptp-excerpt.txt", "--version", "2027Q1"],
        ["mue", "mue-excerpt.csv", "--version", "2027Q1", "--effective", "2027-01-01"],
        ["mpfs-rvu", "pprrvu-excerpt.csv", "--version", "2027A"],
        ["mpfs-gpci", "gpci-excerpt.csv", "--version", "2027"],
    ]
    for kind, name, *options in loads:
        argv = ["load", kind, str(FIXTURES / name), "--data-dir", str(tmp_path), *options]
        assert cli.main(argv) == 0, kind
    service = TerminologyService(data_dir=tmp_path)
    day = date(2027, 3, 1)
    assert service.lookup("icd10pcs", "0DTJ4ZZ", day).meta.version == "2027"
    assert service.lookup("cpt", "99214", day).meta.version == "2027"
    assert service.lookup("snomed", "44054006").display == "Fixture type 2 diabetes term"
    fever = service.translate(systems.SNOMED, "386661006", systems.ICD10CM, day, age=0.02)
    assert {m.code for m in fever} >= {"P81.9"}
    assert service.mue("99213", day) is not None and service.mue("99213", day).units == 1
    fee = service.fee("99213", day, "01112-05", facility=False)
    assert fee is not None and fee.rvu_version == "2027A"
    # (1.0*1.1 + 1.0*1.5 + 0.1*0.6) * 30
    assert fee.amount == 79.8


def test_loading_a_bad_file_fails_cleanly(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-release.txt"
    bad.write_text("hello\n")
    assert (
        cli.main(
            [
                "load",
                "mue",
                str(bad),
                "--version",
                "x",
                "--effective",
                "2027-01-01",
                "--data-dir",
                str(tmp_path / "data"),
            ]
        )
        == 1
    )
    assert not (tmp_path / "data" / "index.json").exists()


def test_list_shows_shipped_and_loaded_versions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(FIXTURES / "mue-excerpt.csv", tmp_path / "mue.csv")
    cli.main(
        [
            "load",
            "mue",
            str(tmp_path / "mue.csv"),
            "--version",
            "2027Q1",
            "--effective",
            "2027-01-01",
            "--data-dir",
            str(tmp_path / "d"),
        ]
    )
    capsys.readouterr()
    assert cli.main(["list", "--data-dir", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "icd-10-cm  release 2026  in force 2025-10-01 to 2026-09-30" in out
    assert "release 2027Q1" in out and "rows 2" in out
