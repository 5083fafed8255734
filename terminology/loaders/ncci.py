"""Loaders for the NCCI medically unlikely edits and add-on code edits as CMS publishes them.

* MUE (``MCR_MUE_PractitionerServices_Eff_MM-DD-YYYY.csv``, the .xlsx saved by CMS as CSV):
  an AMA notice record, a heading record whose first cell holds a line break
  (``"HCPCS/\\nCPT Code"``), then code, MUE value, MUE adjudication indicator with its label
  (``3 Date of Service Edit: Clinical``) and rationale. The effective date is read from the
  file name; the quarter ends three months later.
* AOC (``AOC_V2026Q2-MCR.xlsx``, or that workbook saved as CSV): edit type 1/2/3, add-on
  code, its deletion date, primary code, its deletion date, edit effective and deletion
  dates (``yyyyddd``, Julian), special instruction notes. The .xlsx is read with the
  standard library (an xlsx file is a zip of XML parts), so no spreadsheet package is needed.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from terminology.loaders.release import file_facts, read_text, release_meta

_CODE = re.compile(r"^[0-9A-Z]{4}[0-9A-Z]$")
_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def _eff_from_name(name: str) -> date | None:
    m = re.search(r"Eff_(\d{2})-(\d{2})-(\d{4})", name)
    return date(int(m.group(3)), int(m.group(1)), int(m.group(2))) if m else None


def _quarter_end(start: date) -> date:
    month = start.month + 3
    after = date(start.year + (month > 12), (month - 1) % 12 + 1, 1)
    return after - timedelta(days=1)


def load_mue(
    path: str | Path,
    version: str | None = None,
    effective_from: date | None = None,
    effective_to: date | None = None,
    setting: str = "practitioner",
) -> dict[str, Any]:
    path = Path(path)
    start = effective_from or _eff_from_name(path.name)
    if start is None:
        raise ValueError("the MUE effective date is not in the file name: pass --effective")
    version = version or f"{start.year}Q{(start.month - 1) // 3 + 1}"
    mues: list[list[Any]] = []
    for row in csv.reader(io.StringIO(read_text(path))):
        row = [c.strip() for c in row]
        if len(row) < 3 or not _CODE.match(row[0]) or not row[1].isdigit():
            continue
        indicator = row[2][:1]
        if indicator not in "123":
            raise ValueError(f"{row[0]}: MUE adjudication indicator {row[2]!r} is not 1, 2 or 3")
        mues.append([row[0], int(row[1]), indicator, row[3] if len(row) > 3 else "", setting])
    if not mues:
        raise ValueError("no MUE rows found")
    return {
        "kind": "mue",
        "meta": release_meta(
            "mue",
            "NCCI_MUE",
            version,
            start,
            effective_to or _quarter_end(start),
            f"CMS NCCI {setting} services MUE table: {path.name}",
        ),
        "setting": setting,
        "mues": mues,
        **file_facts(path, len(mues)),
    }


def _julian(value: str) -> date | None:
    """CMS ``yyyyddd`` (``2026001`` is 1 January 2026); blank or ``*`` is none."""
    value = value.strip()
    if not value or not value[:7].isdigit():
        return None
    try:
        return datetime.strptime(value[:7], "%Y%j").date()
    except ValueError:
        return None


def xlsx_rows(path: str | Path) -> list[list[str]]:
    """Rows of the first worksheet of an .xlsx file, as strings (shared strings resolved)."""
    with zipfile.ZipFile(path) as z:
        shared: list[str] = []
        if "xl/sharedStrings.xml" in z.namelist():
            root = ET.fromstring(z.read("xl/sharedStrings.xml"))
            for si in root.iter(f"{_MAIN}si"):
                shared.append("".join(t.text or "" for t in si.iter(f"{_MAIN}t")))
        sheets = sorted(n for n in z.namelist() if re.match(r"xl/worksheets/sheet\d+\.xml$", n))
        if not sheets:
            raise ValueError(f"{path}: no worksheet")
        root = ET.fromstring(z.read(sheets[0]))
    rows: list[list[str]] = []
    for row in root.iter(f"{_MAIN}row"):
        cells: dict[int, str] = {}
        for cell in row.iter(f"{_MAIN}c"):
            ref = cell.get("r", "")
            letters = re.match(r"[A-Z]+", ref)
            col = 0
            for ch in letters.group(0) if letters else "":
                col = col * 26 + ord(ch) - 64
            kind = cell.get("t")
            if kind == "inlineStr":
                text = "".join(t.text or "" for t in cell.iter(f"{_MAIN}t"))
            else:
                v = cell.find(f"{_MAIN}v")
                text = (v.text or "") if v is not None else ""
                if kind == "s" and text:
                    text = shared[int(text)]
                elif text.endswith(".0"):
                    text = text[:-2]
            cells[col - 1 if letters else len(cells)] = text.strip()
        if cells:
            rows.append([cells.get(i, "") for i in range(max(cells) + 1)])
    return rows


def load_aoc(
    path: str | Path,
    version: str | None = None,
    effective_from: date | None = None,
    effective_to: date | None = None,
) -> dict[str, Any]:
    path = Path(path)
    if path.suffix.lower() == ".xlsx":
        rows = xlsx_rows(path)
    else:
        rows = [[c.strip() for c in r] for r in csv.reader(io.StringIO(read_text(path)))]
    head = next((i for i, r in enumerate(rows) if r and r[0].upper().startswith("AOC_EDIT")), None)
    if head is None:
        raise ValueError("no AOC heading row (AOC_Edit_Type, Add-On_Code, ...)")
    names = [n.upper().replace("-", "_") for n in rows[head]]

    def col(name: str) -> int:
        return names.index(name)

    c_type, c_addon, c_addon_del = col("AOC_EDIT_TYPE"), col("ADD_ON_CODE"), col("AOC_DELDT")
    c_primary, c_primary_del = col("PRIMARY_CODE"), col("PRIMARY_CODE_DELDT")
    c_eff, c_del = col("AOC_EDIT_EFFDT"), col("AOC_EDIT_DELDT")
    c_note = (
        names.index("SPECIAL_INSTRUCTION_NOTES") if "SPECIAL_INSTRUCTION_NOTES" in names else -1
    )
    edits: list[list[Any]] = []
    newest: date | None = None
    for r in rows[head + 1 :]:
        r = r + [""] * (len(names) - len(r))
        if r[c_type] not in ("1", "2", "3") or not _CODE.match(r[c_addon]):
            continue
        effective = _julian(r[c_eff]) or date(1996, 1, 1)
        newest = effective if newest is None else max(newest, effective)
        deleted = _julian(r[c_del]) or _julian(r[c_addon_del])
        primary_del = _julian(r[c_primary_del])
        edits.append(
            [
                r[c_addon],
                r[c_primary],
                r[c_type],
                effective.isoformat(),
                deleted.isoformat() if deleted else None,
                primary_del.isoformat() if primary_del else None,
                r[c_note] if c_note >= 0 else "",
            ]
        )
    if not edits:
        raise ValueError("no AOC edit rows found")
    m = re.search(r"V(\d{4})Q([1-4])", path.name)
    if version is None:
        version = f"{m.group(1)}Q{m.group(2)}" if m else (newest or date.today()).strftime("%Y")
    if effective_from is None and m:
        effective_from = date(int(m.group(1)), 3 * int(m.group(2)) - 2, 1)
    start = effective_from or newest or date.today()
    return {
        "kind": "aoc",
        "meta": release_meta(
            "aoc",
            "NCCI_AOC",
            version,
            start,
            effective_to or _quarter_end(start),
            f"CMS NCCI add-on code edits: {path.name}",
        ),
        "aoc": edits,
        **file_facts(path, len(edits)),
    }
