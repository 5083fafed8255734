"""Loaders for CMS claim edits and the physician fee schedule.

* NCCI procedure-to-procedure (PTP) edits, the quarterly practitioner or hospital file as
  text (tab-separated, a few heading lines, then rows: column 1, column 2, "in existence
  prior to 1996" flag, effective date YYYYMMDD, deletion date YYYYMMDD or ``*``, modifier
  indicator 0/1/9, rationale) or the same columns as CSV.
* NCCI medically unlikely edits (MUE), the quarterly file saved as CSV: HCPCS/CPT code,
  MUE value, MUE adjudication indicator ("2 Date of Service Edit: Policy"), rationale.
* Medicare PFS relative value file (PPRRVU*.csv): HCPCS, MOD, status, work RVU, non-facility
  and facility PE RVUs, MP RVU, global days, conversion factor. CPT descriptors in that
  file are not kept.
* Medicare PFS GPCI file (GPCI*.csv): MAC, state, locality number, locality name, work
  (PW), PE and MP GPCIs.

Each returns a compiled table (a dict in the ``terminology.store`` format).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

from terminology.model import Meta
from terminology.systems import BILLABLE_BASE

_CODE = re.compile(r"^[0-9A-Z]{4}[0-9A-Z]$")


def _text(path: str | Path) -> str:
    raw = Path(path).read_bytes()
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def _rows(path: str | Path) -> list[list[str]]:
    text = _text(path)
    sample = "\n".join(text.splitlines()[:40])
    delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
    return [[c.strip() for c in row] for row in csv.reader(io.StringIO(text), delimiter=delimiter)]


def _yyyymmdd(value: str) -> date | None:
    value = value.strip()
    if not value or value.startswith("*"):
        return None
    for fmt in ("%Y%m%d", "%m/%d/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    return None


def _meta(
    kind: str,
    name: str,
    version: str,
    start: date,
    end: date | None,
    source: str,
    description: str = "",
) -> dict[str, Any]:
    return Meta(
        url=f"{BILLABLE_BASE}/{kind}",
        version=version,
        name=name,
        title=f"{name} {version}",
        effective_from=start,
        effective_to=end,
        source=source,
        publisher="CMS",
        description=description,
        license="Public domain (US Government work); CPT codes (c) AMA",
    ).to_json()


def load_ptp(
    path: str | Path,
    version: str,
    effective_from: date | None = None,
    effective_to: date | None = None,
    setting: str = "practitioner",
) -> dict[str, Any]:
    edits: list[list[Any]] = []
    earliest: date | None = None
    for row in _rows(path):
        if len(row) < 6 or not (_CODE.match(row[0]) and _CODE.match(row[1])):
            continue
        effective = _yyyymmdd(row[3])
        if effective is None:
            continue
        deleted = _yyyymmdd(row[4])
        indicator = row[5][:1] if row[5] else "9"
        rationale = row[6] if len(row) > 6 else ""
        edits.append(
            [
                row[0],
                row[1],
                effective.isoformat(),
                deleted.isoformat() if deleted else None,
                indicator,
                rationale,
            ]
        )
        earliest = effective if earliest is None else min(earliest, effective)
    if not edits:
        raise ValueError("no PTP edit rows found")
    start = effective_from or earliest or date.today()
    return {
        "kind": "ncci-ptp",
        "meta": _meta(
            "ncci-ptp",
            "NCCI_PTP",
            version,
            start,
            effective_to,
            f"CMS NCCI {setting} PTP edits: {Path(path).name}",
        ),
        "setting": setting,
        "edits": edits,
    }


def load_mue(
    path: str | Path,
    version: str,
    effective_from: date,
    effective_to: date | None = None,
    setting: str = "practitioner",
) -> dict[str, Any]:
    mues: list[list[Any]] = []
    for row in _rows(path):
        if len(row) < 3 or not _CODE.match(row[0]) or not row[1].strip().isdigit():
            continue
        indicator = row[2][:1]
        rationale = row[3] if len(row) > 3 else ""
        mues.append([row[0], int(row[1]), indicator, rationale, setting])
    if not mues:
        raise ValueError("no MUE rows found")
    return {
        "kind": "mue",
        "meta": _meta(
            "mue",
            "NCCI_MUE",
            version,
            effective_from,
            effective_to,
            f"CMS NCCI {setting} MUE file: {Path(path).name}",
        ),
        "setting": setting,
        "mues": mues,
    }


def _header_index(rows: list[list[str]], first: str) -> tuple[int, list[str]]:
    """Find the heading row starting with ``first`` and join continuation heading rows."""
    for i, row in enumerate(rows):
        if len(row) >= 5 and row[0].upper().startswith(first):
            names = [c.upper() for c in row]
            j = i + 1
            while j < len(rows) and rows[j] and not _CODE.match(rows[j][0]):
                names = [
                    f"{a} {b.upper()}".strip()
                    for a, b in zip(
                        names, rows[j] + [""] * (len(names) - len(rows[j])), strict=False
                    )
                ]
                j += 1
            return j, names
    raise ValueError(f"no heading row starting with {first}")


def _col(names: list[str], *needles: str, avoid: tuple[str, ...] = ()) -> int:
    for i, name in enumerate(names):
        if all(n in name for n in needles) and not any(a in name for a in avoid):
            return i
    raise ValueError(f"no column with {' '.join(needles)}")


def _num(value: str) -> float:
    try:
        return float(value.replace(",", "").replace("$", "") or 0)
    except ValueError:
        return 0.0


def load_rvu(
    path: str | Path,
    version: str,
    effective_from: date | None = None,
    effective_to: date | None = None,
) -> dict[str, Any]:
    rows = _rows(path)
    start_row, names = _header_index(rows, "HCPCS")
    c_mod = _col(names, "MOD")
    c_status = _col(names, "STATUS")
    c_work = _col(names, "WORK", avoid=("GPCI",))
    c_pe_nf = _col(names, "NON", "PE", avoid=("INDICATOR", "TOTAL", "NA "))
    c_pe_f = _col(names, "FAC", "PE", avoid=("NON", "INDICATOR", "TOTAL", "NA "))
    c_mp = _col(names, "MP", avoid=("TOTAL",))
    c_glob = _col(names, "GLOB")
    try:
        c_cf = _col(names, "CONV")
    except ValueError:
        c_cf = -1
    rvus: list[list[Any]] = []
    factor: float | None = None
    for row in rows[start_row:]:
        if not row or not _CODE.match(row[0]):
            continue
        cf = _num(row[c_cf]) if c_cf >= 0 and c_cf < len(row) else 0.0
        factor = factor or (cf or None)
        rvus.append(
            [
                row[0],
                row[c_mod],
                row[c_status],
                _num(row[c_work]),
                _num(row[c_pe_nf]),
                _num(row[c_pe_f]),
                _num(row[c_mp]),
                row[c_glob],
                cf or None,
            ]
        )
    if not rvus:
        raise ValueError("no RVU rows found")
    year = int(re.sub(r"\D", "", version)[:4] or date.today().year)
    return {
        "kind": "mpfs-rvu",
        "meta": _meta(
            "mpfs-rvu",
            "MPFS_RVU",
            version,
            effective_from or date(year, 1, 1),
            effective_to or date(year, 12, 31),
            f"CMS PFS relative value file: {Path(path).name}",
        ),
        "conversion_factor": factor,
        "rvus": rvus,
    }


def load_gpci(
    path: str | Path,
    version: str,
    effective_from: date | None = None,
    effective_to: date | None = None,
) -> dict[str, Any]:
    rows = _rows(path)
    for i, row in enumerate(rows):
        upper = [c.upper() for c in row]
        if (
            len(row) >= 5
            and any("LOCALITY" in c for c in upper)
            and any("GPCI" in c for c in upper)
        ):
            names, start = upper, i + 1
            break
    else:
        raise ValueError("no GPCI heading row")
    c_mac = (
        _col(names, "CONTRACTOR") if any("CONTRACTOR" in n for n in names) else _col(names, "MAC")
    )
    c_loc = _col(names, "LOCALITY", avoid=("NAME",))
    c_name = _col(names, "LOCALITY NAME")
    c_pw = _col(names, "PW")
    c_pe = _col(names, "PE", "GPCI", avoid=("PW",))
    c_mp = _col(names, "MP", "GPCI")
    gpcis = []
    for row in rows[start:]:
        if len(row) <= max(c_pw, c_pe, c_mp) or not row[c_mac].strip().isdigit():
            continue
        locality = f"{row[c_mac].strip()}-{row[c_loc].strip().zfill(2)}"
        gpcis.append(
            [
                locality,
                row[c_name].strip().rstrip("*").strip(),
                _num(row[c_pw]),
                _num(row[c_pe]),
                _num(row[c_mp]),
            ]
        )
    if not gpcis:
        raise ValueError("no GPCI rows found")
    year = int(re.sub(r"\D", "", version)[:4] or date.today().year)
    return {
        "kind": "mpfs-gpci",
        "meta": _meta(
            "mpfs-gpci",
            "MPFS_GPCI",
            version,
            effective_from or date(year, 1, 1),
            effective_to or date(year, 12, 31),
            f"CMS PFS GPCI file: {Path(path).name}",
        ),
        "gpcis": gpcis,
    }
