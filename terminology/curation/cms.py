"""Compile the shipped CMS releases (``terminology/data/cms/``) into the shipped tables.

    python -m terminology.curation.cms

The raw files are the official CMS/NCHS files, byte for byte (gzip'd when large; see
``terminology/data/cms/SOURCES.md``). They are read here through the same loaders as
``billable terminology load``, so what ships is exactly what a user gets by loading those
files. Each release is in force for its own quarter or year; where it is the only release
of its year that ships, it is applied to the whole year, and its index row says so
(``official_from``/``official_to`` keep CMS's own window, and a claim coded outside it
carries an information issue).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from terminology import catalog, store, systems
from terminology.loaders import cms_mpfs, ncci, other_systems
from terminology.loaders.icd10cm_addenda import load_with_addenda
from terminology.loaders.release import file_facts
from terminology.model import CodeSystemVersion, Concept, Meta

DATA = Path(__file__).resolve().parent.parent / "data"
CMS = DATA / "cms"
YEAR = (date(2026, 1, 1), date(2026, 12, 31))
RVU_FILE = "PPRRVU2026_Jul_nonQPP.nocptdesc.csv.gz"
CPT_SUBSET = Path(__file__).resolve().parent / "cpt-subset.tsv"
# Replaced by the CMS releases: illustrative tables and the CPT/HCPCS subsets.
RETIRED = (
    "mue-NCCI_MUE-billable-illustrative-2025-10-01.json.gz",
    "mpfs-rvu-MPFS_RVU-2026-illustrative-2026-01-01.json.gz",
    "mpfs-gpci-MPFS_GPCI-2026-illustrative-2026-01-01.json.gz",
    "codesystem-CPT-billable-2026.1-2025-10-01.json.gz",
    "codesystem-HCPCS-billable-2026.1-2025-10-01.json.gz",
    "ncci-ptp-NCCI_PTP-billable-illustrative-1996-01-01.json.gz",
)


def _widen(data: dict[str, Any], start: date, end: date | None) -> dict[str, Any]:
    """Apply a release to a wider window, keeping CMS's own window as ``official_*``."""
    meta = data["meta"]
    meta.setdefault("official_from", meta["effective_from"])
    meta.setdefault("official_to", meta["effective_to"])
    meta["effective_from"] = start.isoformat()
    meta["effective_to"] = end.isoformat() if end else None
    meta["description"] = (
        f"{meta.get('description') or ''} CMS release in force {meta['official_from']} to "
        f"{meta['official_to'] or 'until superseded'}; applied by Billable from "
        f"{meta['effective_from']} to {meta['effective_to'] or 'until superseded'} because it "
        "is the only release of that year shipped. Load the release of each quarter for "
        "exact periods."
    ).strip()
    return data


def _publish(data: dict[str, Any]) -> None:
    meta = data["meta"]
    stem = catalog.file_stem(
        data["kind"], meta["name"], meta["version"], date.fromisoformat(meta["effective_from"])
    )
    catalog.publish(DATA, stem, data)
    print(f"compiled {stem}: {data.get('rows', '')} rows")


def _billable_descriptions() -> dict[str, str]:
    """Billable's own short descriptions of the CPT codes its maps use (never AMA text)."""
    out: dict[str, str] = {}
    for line in CPT_SUBSET.read_text().splitlines():
        if line.startswith("#") or "\t" not in line:
            continue
        code, display = line.split("\t", 1)
        if code != "code":
            out[code] = display
    return out


def _cdt_numbers() -> dict[str, str]:
    """The CDT (D) code numbers Billable's maps use, with Billable's descriptions."""
    out: dict[str, str] = {}
    for line in (Path(__file__).resolve().parent / "hcpcs-subset.tsv").read_text().splitlines():
        code, _, display = line.partition("\t")
        if code.startswith("D") and code[1:].isdigit():
            out[code] = display
    return out


def cpt_from_rvu(rvu: dict[str, Any], descriptions: dict[str, str]) -> CodeSystemVersion:
    """The CPT code list for the RVU release's period: every CPT code (Category I, II, III,
    PLA) with a payment status in the file. Status D/F/H rows (deleted) are not codes in
    force. Displays are Billable's words where it has them; CPT descriptors never ship."""
    meta = rvu["meta"]
    concepts: dict[str, Concept] = {}
    for row in rvu["rvus"]:
        code, status = row[0], row[2]
        if not code[:1].isdigit() or status in ("D", "F", "H", "") or code in concepts:
            continue
        display = descriptions.get(code) or "CPT code (AMA descriptor not shipped)"
        concepts[code] = Concept(code, display, None, True, properties={"status": status})
    cpt_meta = Meta(
        url=systems.CPT,
        version=meta["version"],
        name="CPT",
        title=f"CPT code numbers of the Medicare PFS {meta['version']}",
        effective_from=date.fromisoformat(meta["effective_from"]),
        effective_to=date.fromisoformat(meta["effective_to"]) if meta["effective_to"] else None,
        source=f"{meta['source']}: the codes with a payment status (descriptors removed)",
        publisher="CMS (code numbers (c) AMA)",
        description="Code numbers only, for validity by date of service; displays are "
        "Billable's own short descriptions or a placeholder. Load your licensed AMA file "
        "(billable terminology load cpt) for descriptors.",
        license="CPT codes (c) AMA; numbers only, no descriptors",
        official_from=date.fromisoformat(meta["official_from"])
        if meta.get("official_from")
        else None,
        official_to=date.fromisoformat(meta["official_to"]) if meta.get("official_to") else None,
    )
    return CodeSystemVersion(cpt_meta, concepts, {}, "complete")


def compile_cms() -> None:
    rvu = _widen(cms_mpfs.load_rvu(CMS / RVU_FILE), *YEAR)
    _publish(rvu)
    cpt = cpt_from_rvu(rvu, _billable_descriptions())
    _publish({**store.codesystem_to_json(cpt), **file_facts(CMS / RVU_FILE, len(cpt.concepts))})
    _publish(cms_mpfs.load_gpci(CMS / "GPCI2026.csv", "2026"))
    _publish(cms_mpfs.load_locco(CMS / "26LOCCO.csv", "2026"))
    _publish(
        _widen(ncci.load_mue(CMS / "MCR_MUE_PractitionerServices_Eff_04-01-2026.csv.gz"), *YEAR)
    )
    _publish(_widen(ncci.load_aoc(CMS / "AOC_V2026Q2-MCR.xlsx"), *YEAR))
    hcpcs_path = CMS / "HCPC2026_JAN_ANWEB_01122026.txt.gz"
    hcpcs = other_systems.load_hcpcs(hcpcs_path, "2026-01", date(2026, 1, 1), YEAR[1])
    cdt = _cdt_numbers()
    concepts = dict(hcpcs.concepts)  # a loader's version: a plain dict
    for code, display in cdt.items():
        concepts.setdefault(code, Concept(code, display, None, True, properties={"cdt": True}))
    hcpcs = replace(hcpcs, concepts=concepts)
    hcpcs_data = store.codesystem_to_json(hcpcs)
    hcpcs_data["meta"]["official_from"] = "2026-01-01"
    hcpcs_data["meta"]["official_to"] = "2026-03-31"
    hcpcs_data["meta"]["title"] = "HCPCS Level II, January 2026 quarterly file"
    hcpcs_data["meta"]["description"] = (
        "Every code and modifier of CMS's January 2026 alpha-numeric HCPCS file, with its "
        "added and termination dates (enforced per code). Applied to all of 2026: the April, "
        "July and October files are not shipped; load them as they come. CDT dental "
        f"D codes are not in the CMS file (ADA copyright): the {len(cdt)} the maps use are "
        "added as numbers with Billable's own descriptions."
    )
    _publish({**hcpcs_data, **file_facts(hcpcs_path, len(hcpcs.concepts))})
    fy2026 = store.codesystem_from_json(
        store.read_file(DATA / "codesystem-ICD10CM-2026-2025-10-01.json.gz")
    )
    addenda = CMS / "icd10cm_order_addenda_2027.txt.gz"
    fy2027 = load_with_addenda(fy2026, addenda, 2027)
    data = store.codesystem_to_json(fy2027)
    data["meta"]["title"] = "ICD-10-CM FY2027 (April 2026 tabular + FY2027 order-file addenda)"
    billable = sum(1 for c in fy2027.concepts.values() if c.billable)
    _publish({**data, **file_facts(addenda, billable)})
    index = DATA / catalog.INDEX
    import orjson

    rows = orjson.loads(index.read_bytes())
    rows = [r for r in rows if r["file"] not in RETIRED]
    index.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
    for name in RETIRED:
        (DATA / name).unlink(missing_ok=True)


if __name__ == "__main__":
    compile_cms()
