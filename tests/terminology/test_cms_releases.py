"""The CMS releases: the shipped official files, their compiled tables, and the loaders on
excerpts in the official formats.

The excerpt fixtures are rows cut from the 2026 CMS files, byte for byte, saved under the
NEXT release's file name (``PPRRVU2027_Jan_nonQPP``, ``..._Eff_01-01-2027``, ``V2027Q1``) so
the tests show that dropping in the next quarter needs no option.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from datetime import date
from pathlib import Path

import orjson
import pytest

from terminology import cli, systems
from terminology.loaders import cms_mpfs, ncci
from terminology.loaders.icd10cm_addenda import apply_addenda, read_addenda
from terminology.model import CodeSystemVersion, Concept, Meta
from terminology.service import TerminologyError, TerminologyService

from .conftest import FIXTURES

SHIPPED = Path(__file__).resolve().parents[2] / "terminology" / "data"
CMS = SHIPPED / "cms"
DAY = date(2026, 8, 3)  # inside RVU26C's own quarter


# ------------------------------------------------------------- shipped raw files
def test_shipped_release_files_are_the_cms_bytes_recorded_in_the_index() -> None:
    """Each compiled table names the file it was read from, its SHA-256 and row count, and
    those match the shipped file (the hashes are those of the CMS/NCHS originals)."""
    index = orjson.loads((SHIPPED / "index.json").read_bytes())
    by_file = {row.get("source_file"): row for row in index if row.get("source_file")}
    expected = {
        "PPRRVU2026_Jul_nonQPP.nocptdesc.csv": (
            "4e538675e08921aa26348f90741e86a1ebaf249cc3c6d9edb6bbc3138fb2a0c1",
            19356,
        ),
        "GPCI2026.csv": ("5e2cc8072633ccb0e24b4620e87540852235a71aad6bdd12601308b41e636bf1", 109),
        "26LOCCO.csv": ("250733bd5eefaea091541fe24d865eda38fb166f124c7bd474b55581b45e972a", 110),
        "MCR_MUE_PractitionerServices_Eff_04-01-2026.csv": (
            "720027c47fd38f3194bbe332d7cd7e6940cdc1e1945d08d46000945c7ce6494c",
            15095,
        ),
        "AOC_V2026Q2-MCR.xlsx": (
            "870a84912f91f8e8fdfa1acd01f076cfb1473ba10c98861fc18d040ce3fbdac6",
            9000,
        ),
        "HCPC2026_JAN_ANWEB_01122026.txt": (
            "1a9ce53ae6546c54e8150fc51b25d2b3e3eeefbca657c2ab2f7f1d7888a2239e",
            9029,  # 8,623 codes + 383 modifiers + 23 CDT numbers the maps use
        ),
        "icd10cm_order_addenda_2027.txt": (
            "d64c57ef4534e4f90336decf27a34ba42979c31cd88f6ea923b5b5edd3da6384",
            74879,
        ),
    }
    for name, (sha, rows) in expected.items():
        row = by_file[name]
        assert (row["sha256"], row["rows"]) == (sha, rows), name
        shipped = CMS / name if (CMS / name).exists() else CMS / f"{name}.gz"
        data = shipped.read_bytes()
        data = gzip.decompress(data) if shipped.suffix == ".gz" else data
        assert hashlib.sha256(data).hexdigest() == sha, name


def test_no_cpt_descriptor_is_in_the_shipped_rvu_file() -> None:
    text = gzip.decompress((CMS / "PPRRVU2026_Jul_nonQPP.nocptdesc.csv.gz").read_bytes())
    rows = list(csv.reader(io.StringIO(text.decode("latin-1"))))[10:]
    numeric = [r for r in rows if r and r[0][:1].isdigit()]
    assert len(numeric) > 10_000 and all(r[2] == "" for r in numeric)
    assert any(r[2] for r in rows if r and r[0].startswith("G"))  # Level II keeps its text


def test_rvu26c_values_for_known_codes(service: TerminologyService) -> None:
    r = service.rvu("99213", DAY)
    assert r is not None
    assert (r.status, r.work, r.pe_nonfacility, r.pe_facility, r.malpractice) == (
        "A",
        1.30,
        1.46,
        0.33,
        0.09,
    )
    assert (r.global_days, r.pctc, r.conversion_factor) == ("XXX", "0", 33.4009)
    knee = service.rvu("27447", DAY)
    assert knee is not None
    assert (knee.global_days, knee.mult_proc, knee.bilateral, knee.assistant) == (
        "090",
        "2",
        "1",
        "2",
    )
    assert knee.na_nonfacility  # a total knee is never paid at the office rate
    chest = service.rvu("71046", DAY, "26")
    assert chest is not None and chest.work == 0.21 and chest.pctc == "1"
    meta, warnings = service.table_meta("mpfs-rvu", DAY)
    assert meta is not None and meta.version == "RVU26C" and warnings == []


def test_a_date_outside_the_rvu_release_quarter_says_which_release_answered(
    service: TerminologyService,
) -> None:
    meta, warnings = service.table_meta("mpfs-rvu", date(2026, 3, 2))
    assert meta is not None and meta.version == "RVU26C"
    assert "2026-07-01 to 2026-09-30" in warnings[0]


def test_mue_values_and_adjudication_indicators(service: TerminologyService) -> None:
    counts: dict[str, int] = {}
    entry = next(e for e in service.catalog("mue"))
    for m in entry.load():
        counts[m.adjudication_indicator] = counts.get(m.adjudication_indicator, 0) + 1
    assert counts == {"1": 41, "2": 5417, "3": 9637}
    checks = {"99213": (2, "3"), "99215": (1, "3"), "99202": (1, "2"), "96372": (4, "3")}
    for code, (units, mai) in checks.items():
        mue = service.mue(code, DAY)
        assert mue is not None and (mue.units, mue.adjudication_indicator) == (units, mai), code


def test_add_on_code_edits(service: TerminologyService) -> None:
    (edit,) = service.addons("99292", DAY)
    assert (edit.primary, edit.edit_type) == ("99291", "1")
    assert service.addons("99213", DAY) == []
    entry = next(e for e in service.catalog("aoc"))
    edits = entry.load()
    assert len(edits) == 9000 and len({e.addon for e in edits}) == 830


def test_hcpcs_january_2026_codes_modifiers_and_dates(service: TerminologyService) -> None:
    assert service.lookup(systems.HCPCS, "A0425", DAY).display == "Ground mileage, per statute mile"
    assert service.validate_code(systems.HCPCS, "G0439", DAY).valid
    terminated = service.validate_code(systems.HCPCS, "J0171", DAY)
    assert terminated.reason == "not-effective" and "2025-06-30" in terminated.message
    modifier = service.validate_code(systems.HCPCS, "XS", DAY)
    assert modifier.reason == "not-billable"


def test_gpci_floor_and_localities(service: TerminologyService) -> None:
    alabama = service.gpci("10112-00", DAY)
    assert alabama is not None and alabama.work == 0.988 and alabama.work_floor == 1.0
    # the file's footnote: the 1.0 work floor was extended through 2026-01-31
    assert alabama.work_on(date(2026, 1, 31)) == 1.0 and alabama.work_on(DAY) == 0.988
    assert service.resolve_locality("13202-01") == "13202-01"
    assert service.resolve_locality("NY-01") == "13202-01"
    assert service.resolve_locality("MISSOURI/JACKSON") == "05302-02"
    assert service.resolve_locality("MO/Greene") == "05302-99"  # rest of state
    assert service.resolve_locality("AL") == "10112-00"  # statewide
    with pytest.raises(TerminologyError):
        service.resolve_locality("ZZ/Nowhere")


# ------------------------------------------------------------------ ICD-10-CM 2027
def test_fy2027_is_the_april_2026_tabular_plus_the_addenda_exactly(
    service: TerminologyService,
) -> None:
    fy2026, _ = service.code_system(systems.ICD10CM, version="2026")
    fy2027, _ = service.code_system(systems.ICD10CM, version="2027")
    addenda = read_addenda(CMS / "icd10cm_order_addenda_2027.txt.gz")
    summary = addenda.summary
    assert summary[("codes", "additions")] == 190 and summary[("codes", "deletions")] == 30
    assert summary[("codes", "revisions")] == 4

    def valid(cs: CodeSystemVersion) -> set[str]:
        return {c for c, x in cs.concepts.items() if x.billable}

    def headers(cs: CodeSystemVersion) -> set[str]:
        return {c for c, x in cs.concepts.items() if not x.billable}

    assert len(valid(fy2026)) == 74719 and len(valid(fy2027)) == 74879
    assert valid(fy2027) - valid(fy2026) == addenda.codes("add")
    assert valid(fy2026) - valid(fy2027) == addenda.codes("delete")
    assert len(addenda.codes("add")) == 190 and len(addenda.codes("delete")) == 30
    assert len(headers(fy2026)) == 23467 and len(headers(fy2027)) == 23524
    revised = {
        c
        for c in valid(fy2026) & valid(fy2027)
        if fy2026.concepts[c].display != fy2027.concepts[c].display
    }
    assert revised == {"L02.232", "L03.312", "L03.322", "Z29.14"}
    assert fy2027.concepts["Z29.14"].display.endswith("immune globulin")


def test_a_date_of_service_from_2026_10_01_is_coded_with_fy2027(
    service: TerminologyService,
) -> None:
    # D69.1 became a header in FY2027 (D69.11, D69.19 added)
    assert service.validate_code("icd10cm", "D69.1", date(2026, 9, 30)).valid
    after = service.validate_code("icd10cm", "D69.1", date(2026, 10, 1))
    assert after.reason == "not-billable" and after.version == "2027" and not after.warnings
    new = service.validate_code("icd10cm", "D69.11", date(2026, 10, 1))
    assert new.valid and new.version == "2027"
    early = service.validate_code("icd10cm", "D69.11", date(2026, 9, 30))
    assert early.reason == "not-effective" and "added in ICD-10-CM FY2027" in early.message
    # new codes inherit the notes and chapter of their ancestors
    assert service.lookup("icd10cm", "D69.11", date(2026, 10, 1)).ancestors[0][0] == "D69.1"


def test_addenda_excerpt_applies_adds_deletes_flag_changes_and_revisions() -> None:
    meta = Meta("u", "2026", "ICD10CM", "t", date(2025, 10, 1), date(2026, 9, 30), "s")
    base = CodeSystemVersion(
        meta,
        {
            "C78": Concept("C78", "Secondary malignant neoplasm", None, False),
            "C78.3": Concept("C78.3", "Secondary, other respiratory", "C78", False),
            "D69": Concept("D69", "Purpura", None, False),
            "D69.1": Concept("D69.1", "Qualitative platelet defects", "D69", True),
            "Z29": Concept("Z29", "Prophylactic measures", None, False),
            "Z29.14": Concept("Z29.14", "old title", "Z29", True),
        },
        {},
    )
    addenda = read_addenda(FIXTURES / "icd10cm_order_addenda-excerpt.txt")
    new = apply_addenda(base, addenda, 2027, "excerpt")
    c = new.concepts
    assert new.meta.effective_from == date(2026, 10, 1)
    assert c["C78.31"].billable and c["C78.31"].parent == "C78.3"
    assert not c["D69.1"].billable and c["D69.11"].parent == "D69.1"
    assert c["Z29.14"].display == "Encounter for prophylactic rabies immune globulin"
    assert base.concepts["D69.1"].billable  # the base is not modified


# ------------------------------------------------------- loaders on official excerpts
def test_rvu_loader_reads_the_official_heading_and_names_the_release() -> None:
    data = cms_mpfs.load_rvu(FIXTURES / "PPRRVU2027_Jan_nonQPP-excerpt.csv")
    assert data["meta"]["version"] == "RVU27A"
    assert (data["meta"]["effective_from"], data["meta"]["effective_to"]) == (
        "2027-01-01",
        "2027-03-31",
    )
    rows = {(r[0], r[1]): r for r in data["rvus"]}
    knee = rows[("27447", "")]
    # code, mod, status, work, PE nf, PE f, MP, global, CF, PC/TC, mult, bilat, asst, co, team
    assert knee[:15] == [
        "27447", "", "A", 19.11, 11.58, 11.58, 4.02, "090", 33.4009,
        "0", "2", "1", "2", "1", "0",
    ]  # fmt: skip
    assert rows[("71046", "TC")][9] == "1"
    assert len(data["rvus"]) == 10 and data["rows"] == 10


def test_gpci_loader_keeps_both_work_gpcis_and_the_floor_date() -> None:
    data = cms_mpfs.load_gpci(FIXTURES / "GPCI-excerpt-official.csv", "2027")
    assert data["floor_until"] == "2026-01-31"
    locality, name, *gpcis = data["gpcis"][0]
    assert locality == "01112-05" and name.startswith("SAN FRANCISCO-OAKLAND-BERKELEY")
    assert gpcis == [1.095, 1.410, 0.425, "CA", 1.095]


def test_locco_loader_carries_the_state_down() -> None:
    data = cms_mpfs.load_locco(FIXTURES / "LOCCO-excerpt.csv", "2027")
    by_id = {f"{r[0]}-{r[1]}": r for r in data["localities"]}
    assert by_id["01112-05"][2] == "CALIFORNIA"
    assert by_id["05302-01"][2] == "MISSOURI" and "ST. LOUIS" in by_id["05302-01"][4]


def test_mue_loader_reads_the_notice_and_the_two_line_heading() -> None:
    data = ncci.load_mue(FIXTURES / "MCR_MUE_PractitionerServices_Eff_01-01-2027-excerpt.csv")
    assert data["meta"]["version"] == "2027Q1"
    assert (data["meta"]["effective_from"], data["meta"]["effective_to"]) == (
        "2027-01-01",
        "2027-03-31",
    )
    rows = {r[0]: r for r in data["mues"]}
    assert rows["99213"][:4] == ["99213", 2, "3", "Clinical: Data"]
    assert rows["A0425"][2] == "1" and rows["99202"][2] == "2"


def test_aoc_loader_reads_julian_dates_from_csv_and_the_xlsx() -> None:
    data = ncci.load_aoc(FIXTURES / "AOC_V2027Q1-MCR-excerpt.csv")
    assert data["meta"]["version"] == "2027Q1" and data["meta"]["effective_from"] == "2027-01-01"
    rows = {(r[0], r[1]): r for r in data["aoc"]}
    assert rows[("99292", "99291")][2:5] == ["1", "2013-04-01", None]
    # 2020366: the 366th day of 2020 (a leap year)
    assert rows[("96160", "99201")][4] == "2020-12-31"
    workbook = ncci.load_aoc(CMS / "AOC_V2026Q2-MCR.xlsx")
    assert workbook["rows"] == 9000 and workbook["meta"]["version"] == "2026Q2"


def test_cli_loads_the_next_quarter_from_the_file_name_alone(tmp_path: Path) -> None:
    """``billable terminology load mue FILE`` with no --version/--effective."""
    for kind, name in [
        ("mpfs-rvu", "PPRRVU2027_Jan_nonQPP-excerpt.csv"),
        ("mue", "MCR_MUE_PractitionerServices_Eff_01-01-2027-excerpt.csv"),
        ("aoc", "AOC_V2027Q1-MCR-excerpt.csv"),
    ]:
        assert cli.main(["load", kind, str(FIXTURES / name), "--data-dir", str(tmp_path)]) == 0
    service = TerminologyService(data_dir=tmp_path)
    day = date(2027, 2, 1)
    meta, warnings = service.table_meta("mpfs-rvu", day)
    assert meta is not None and meta.version == "RVU27A" and warnings == []
    assert service.mue("99213", day) is not None
    assert service.table_meta("mue", day)[0].version == "2027Q1"  # type: ignore[union-attr]
    assert service.addons("99292", day)[0].primary == "99291"
    # 2026 dates keep the shipped 2026 releases
    assert service.table_meta("mpfs-rvu", DAY)[0].version == "RVU26C"  # type: ignore[union-attr]


# ------------------------------------------------------------------- $versions
def test_versions_lists_each_release_with_its_dates_file_and_checksum(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/fhir/CodeSystem/$versions", params={"date": "2026-10-05"})
    assert response.status_code == 200, response.text
    releases = [
        {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in r["part"]}
        for r in response.json()["parameter"]
    ]
    by_url = {r["url"]: r for r in releases}
    rvu = by_url["https://billable.dev/fhir/mpfs-rvu"]
    assert (rvu["version"], rvu["publisherFrom"], rvu["publisherTo"]) == (
        "RVU26C",
        "2026-07-01",
        "2026-09-30",
    )
    assert rvu["sourceFile"] == "PPRRVU2026_Jul_nonQPP.nocptdesc.csv" and rvu["rows"] == 19356
    assert rvu["sha256"].startswith("4e538675")
    icd = by_url["http://hl7.org/fhir/sid/icd-10-cm"]  # only the one in force that day
    assert icd["version"] == "2027" and icd["effectiveFrom"] == "2026-10-01"
    assert client.get("/fhir/CodeSystem/$versions", params={"date": "x"}).status_code == 400


def test_the_server_serves_versions_behind_its_authorization() -> None:
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.config import Settings

    with TestClient(create_app(Settings(store_url="sqlite:///:memory:"))) as app_client:
        response = app_client.get("/fhir/CodeSystem/$versions")
        assert response.status_code == 200, response.text
        kinds = {p["part"][0]["valueCode"] for p in response.json()["parameter"]}
        assert {"mpfs-rvu", "mpfs-gpci", "mue", "aoc", "ncci-ptp", "codesystem"} <= kinds


def test_cli_applies_an_addenda_to_the_newest_earlier_fiscal_year(tmp_path: Path) -> None:
    argv = ["load", "icd10cm-addenda", str(CMS / "icd10cm_order_addenda_2027.txt.gz")]
    argv += ["--effective", "2026-10-01", "--data-dir", str(tmp_path)]
    assert cli.main(argv) == 0
    service = TerminologyService(data_dir=tmp_path, include_shipped=True)
    found = service.validate_code("icd10cm", "D69.11", date(2026, 10, 5))
    assert found.valid and found.version == "2027"
    loaded = [e for e in service.catalog("codesystem") if e.path.parent == tmp_path]
    assert len(loaded) == 1 and "addenda" in loaded[0].meta.source
