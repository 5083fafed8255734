"""The rule tables of ``mappings/data/``: CSV files with a ``#`` header naming their source.

Loaded once per process (``rule_tables()``); each table keeps its first header line as its
provenance, and the engine records ``versions()`` in every Claim's Provenance.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


@dataclass(frozen=True, slots=True)
class ChargeRow:
    code: str
    kind: str  # "rvu" (priced with GPCI x CF) or "fixed" (a charge in USD)
    work: float
    pe_nonfacility: float
    pe_facility: float
    malpractice: float
    charge: float
    global_days: str
    pctc: str


@dataclass(frozen=True, slots=True)
class Setting:
    claim_type: str
    setting: str
    pos: str
    facility: bool


@dataclass(slots=True)
class RuleTables:
    em_levels: dict[tuple[str, str], list[tuple[int, str]]]
    preventive: list[tuple[int, int, str, str, str, str]]
    ed_levels: list[tuple[int, str]]
    settings: dict[str, Setting]
    type_codes: dict[str, tuple[str, str]]
    type_words: list[tuple[str, str, str]]
    necessity: dict[str, tuple[str, tuple[str, ...]]]
    charges: dict[str, ChargeRow]
    # SNOMED CT code -> (target kind icd10cm|cpt|hcpcs, code, display)
    supplement: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    # (first code, last code, UB-04 revenue code) for institutional lines, in match order
    revenue_centers: list[tuple[str, str, str]] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    def revenue_of(self, code: str) -> str | None:
        """The revenue code an institutional line of ``code`` is billed under."""
        key = code.upper()
        for first, last, revenue in self.revenue_centers:
            if len(key) == len(first) and first <= key <= last:
                return revenue
        return None

    def versions(self) -> dict[str, str]:
        """{table file: version} read from each header's ``(version ...)``."""
        out = {}
        for name, header in self.sources.items():
            m = re.search(r"version ([\w.\-]+)", header)
            out[name] = m.group(1) if m else "unversioned"
        return out

    def em_codes(self) -> set[str]:
        codes = {c for rows in self.em_levels.values() for _, c in rows}
        codes |= {c for row in self.preventive for c in row[2:4]}
        return codes | {c for _, c in self.ed_levels}


def _read(path: Path, sources: dict[str, str]) -> list[dict[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    header = [ln[1:].strip() for ln in lines if ln.startswith("#")]
    sources[path.name] = header[0] if header else ""
    body = [ln for ln in lines if ln.strip() and not ln.startswith("#")]
    return list(csv.DictReader(body))


def load_tables(data_dir: Path = DATA_DIR) -> RuleTables:
    sources: dict[str, str] = {}
    em: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for r in _read(data_dir / "em-levels.csv", sources):
        em.setdefault((r["setting"], r["patient"]), []).append((int(r["min_minutes"]), r["code"]))
    for rows in em.values():
        rows.sort()
    preventive = [
        (
            int(r["min_age"]),
            int(r["max_age"]),
            r["new"],
            r["established"],
            r["dx_normal"],
            r["dx_abnormal"],
        )
        for r in _read(data_dir / "preventive.csv", sources)
    ]
    ed = sorted(
        (int(r["min_problems_and_procedures"]), r["code"])
        for r in _read(data_dir / "ed-levels.csv", sources)
    )
    settings = {
        r["class"]: Setting(r["claim_type"], r["setting"], r["pos"], r["facility"] == "true")
        for r in _read(data_dir / "encounter-settings.csv", sources)
    }
    revenue_centers = [
        (r["first"], r["last"], r["revenue"])
        for r in _read(data_dir / "revenue-centers.csv", sources)
    ]
    type_codes: dict[str, tuple[str, str]] = {}
    type_words: list[tuple[str, str, str]] = []
    for r in _read(data_dir / "encounter-types.csv", sources):
        if r["match"] == "code":
            type_codes[r["value"]] = (r["kind"], r["pos"])
        else:
            type_words.append((r["value"], r["kind"], r["pos"]))
    necessity_path = Path(
        os.environ.get("BILLABLE_MEDICAL_NECESSITY", data_dir / "medical-necessity.csv")
    )
    necessity = {
        r["code"]: (r["policy"], tuple(r["supporting_icd10cm_prefixes"].split()))
        for r in _read(necessity_path, sources)
    }
    charge_path = Path(
        os.environ.get("BILLABLE_CHARGE_MASTER", data_dir / "charge-master-illustrative.csv")
    )
    charges = {}
    for r in _read(charge_path, sources):

        def num(key: str, row: dict[str, str] = r) -> float:
            return float(row[key]) if row.get(key) else 0.0

        charges[r["code"]] = ChargeRow(
            r["code"],
            r["kind"],
            num("work"),
            num("pe_nonfacility"),
            num("pe_facility"),
            num("malpractice"),
            num("charge"),
            r["global_days"] or "XXX",
            r["pctc"] or "0",
        )
    supplement = {
        r["source_code"]: (r["target_system"], r["target_code"], r["target_display"])
        for r in _read(data_dir / "snomed-supplement.csv", sources)
    }
    return RuleTables(
        em,
        preventive,
        ed,
        settings,
        type_codes,
        type_words,
        necessity,
        charges,
        supplement,
        revenue_centers,
        sources,
    )


@lru_cache(maxsize=1)
def rule_tables() -> RuleTables:
    return load_tables()
