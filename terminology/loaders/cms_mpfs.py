"""Loaders for the Medicare Physician Fee Schedule files as CMS publishes them.

* ``PPRRVU<YY>_<Mon>[_nonQPP|_QPP].csv``: the relative value file of an RVU release
  (RVU26A ... RVU26D). It opens with title, AMA/ADA notice and release-date lines, then a
  column heading split over four or five lines (``STATUS`` above ``CODE``, ``WORK`` above
  ``RVU`` ...); the heading is rebuilt by joining each column's cells top to bottom, and
  columns are found by their joined names, so a release that adds a column still loads.
  Every descriptor is dropped: CPT descriptors are AMA copyright and never compiled.
* ``GPCI<YYYY>.csv``: Addendum E, one row per locality with the work GPCI without and with
  the 1.0 floor, the PE and the MP GPCI. The footnote that says until when the floor was
  extended ("extended through January 31, 2026") is read and kept with the table.
* ``<YY>LOCCO.csv``: counties included in each locality (state names are given once per
  state; the rows below leave the state blank).

Each function returns a compiled table in the ``terminology.store`` format.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

from terminology.loaders.release import file_facts, read_text, release_meta

_CODE = re.compile(r"^[0-9A-Z]{4}[0-9A-Z]$")
_MONTHS = {"JAN": "A", "APR": "B", "JUL": "C", "OCT": "D"}


def _rows(path: str | Path) -> list[list[str]]:
    return [[c.strip() for c in row] for row in csv.reader(io.StringIO(read_text(path)))]


def _heading(rows: list[list[str]]) -> tuple[int, list[str]]:
    """(first data row, joined column names) of a PPRRVU file."""
    for i, row in enumerate(rows):
        if row and row[0].upper() == "HCPCS":
            top = i
            while top > 0 and rows[top - 1] and not rows[top - 1][0] and any(rows[top - 1][3:]):
                top -= 1
            width = max(len(r) for r in rows[top : i + 1])
            names = [
                " ".join(r[c] for r in rows[top : i + 1] if c < len(r) and r[c]).upper()
                for c in range(width)
            ]
            return i + 1, names
    raise ValueError("no PPRRVU heading row (a row starting with HCPCS)")


def _col(names: list[str], want: str) -> int:
    try:
        return names.index(want)
    except ValueError:
        raise ValueError(f"no column {want!r} in the heading ({names})") from None


def _num(value: str) -> float:
    try:
        return float(value.replace(",", "") or 0)
    except ValueError:
        return 0.0


def _release_of(path: Path, rows: list[list[str]]) -> tuple[str, date | None]:
    """("RVU26C", release date) from the file name and its RELEASED line."""
    released = None
    for row in rows[:12]:
        for cell in row:
            m = re.search(r"RELEASED\s+(\d{2}/\d{2}/\d{4})", cell.upper())
            if m:
                released = datetime.strptime(m.group(1), "%m/%d/%Y").date()
    m = re.search(r"PPRRVU(\d{2,4})_?([A-Za-z]{3})", path.name)
    if m:
        year = m.group(1)[-2:]
        return f"RVU{year}{_MONTHS.get(m.group(2).upper(), '')}", released
    return path.stem, released


def quarter_window(version: str) -> tuple[date, date] | None:
    """RVU26C -> (2026-07-01, 2026-09-30): the quarter a release is in force."""
    m = re.fullmatch(r"RVU(\d{2})([A-D])", version)
    if not m:
        return None
    year = 2000 + int(m.group(1))
    q = "ABCD".index(m.group(2))
    start = date(year, 1 + 3 * q, 1)
    after = date(year + 1, 1, 1) if q == 3 else date(year, 4 + 3 * q, 1)
    return start, date.fromordinal(after.toordinal() - 1)


def load_rvu(
    path: str | Path,
    version: str | None = None,
    effective_from: date | None = None,
    effective_to: date | None = None,
) -> dict[str, Any]:
    """The PPRRVU file. ``version`` defaults to the release named by the file (RVU26C);
    the dates default to that release's quarter."""
    path = Path(path)
    rows = _rows(path)
    start, names = _heading(rows)
    release, released = _release_of(path, rows)
    version = version or release
    required = {
        "code": "HCPCS",
        "mod": "MOD",
        "status": "STATUS CODE",
        "work": "WORK RVU",
        "pe_nf": "NON-FAC PE RVU",
        "pe_f": "FACILITY PE RVU",
        "mp": "MP RVU",
        "glob": "GLOB DAYS",
    }
    optional = {
        "na_nf": "NON-FAC NA INDICATOR",
        "pctc": "PCTC IND",
        "mult": "MULT PROC",
        "bilat": "BILAT SURG",
        "asst": "ASST SURG",
        "co": "CO- SURG",
        "team": "TEAM SURG",
        "endo": "ENDO BASE",
        "cf": "CONV FACTOR",
    }
    c = {key: _col(names, name) for key, name in required.items()}
    c.update({key: names.index(name) if name in names else -1 for key, name in optional.items()})

    def cell(row: list[str], key: str, default: str = "9") -> str:
        i = c[key]
        return row[i] if 0 <= i < len(row) else default

    rvus: list[list[Any]] = []
    factor: float | None = None
    for row in rows[start:]:
        if len(row) <= c["glob"] or not _CODE.match(row[c["code"]]):
            continue
        cf = _num(cell(row, "cf", "")) or None
        factor = factor or cf
        rvus.append(
            [
                row[c["code"]],
                row[c["mod"]],
                row[c["status"]],
                _num(row[c["work"]]),
                _num(row[c["pe_nf"]]),
                _num(row[c["pe_f"]]),
                _num(row[c["mp"]]),
                row[c["glob"]],
                cf,
                cell(row, "pctc"),
                cell(row, "mult"),
                cell(row, "bilat"),
                cell(row, "asst"),
                cell(row, "co"),
                cell(row, "team"),
                cell(row, "na_nf", "").upper() == "NA",
                cell(row, "endo", ""),
            ]
        )
    if not rvus:
        raise ValueError("no RVU rows found")
    window = quarter_window(version)
    if window is None:
        year = int(re.sub(r"\D", "", version)[:4] or date.today().year)
        window = (date(year, 1, 1), date(year, 12, 31))
    facts = file_facts(path, len(rvus))
    return {
        "kind": "mpfs-rvu",
        "meta": release_meta(
            "mpfs-rvu",
            "MPFS_RVU",
            version,
            effective_from or window[0],
            effective_to or window[1],
            f"CMS PFS relative value file {version}: {path.name}"
            + (f" (released {released.isoformat()})" if released else ""),
            official=window,
        ),
        "conversion_factor": factor,
        "rvus": rvus,
        **facts,
    }


_FLOOR = re.compile(r"floor.{0,80}?extended through ([A-Z][a-z]+ \d{1,2}, \d{4})")


def load_gpci(
    path: str | Path,
    version: str,
    effective_from: date | None = None,
    effective_to: date | None = None,
) -> dict[str, Any]:
    """Addendum E. Both work GPCIs are kept; the floor applies through the footnote's date."""
    path = Path(path)
    rows = _rows(path)
    for i, row in enumerate(rows):
        upper = [x.upper() for x in row]
        if any("LOCALITY" in x for x in upper) and sum("GPCI" in x for x in upper) >= 2:
            names, start = upper, i + 1
            break
    else:
        raise ValueError("no GPCI heading row")

    def col(*needles: str, avoid: tuple[str, ...] = ()) -> int:
        for j, name in enumerate(names):
            if all(n in name for n in needles) and not any(a in name for a in avoid):
                return j
        return -1

    c_mac = col("CONTRACTOR") if col("CONTRACTOR") >= 0 else col("MAC")
    c_state = col("STATE")
    c_loc = col("LOCALITY", avoid=("NAME",))
    c_name = col("LOCALITY NAME")
    c_pw = col("PW", avoid=("WITH 1",)) if col("WITHOUT") >= 0 else col("PW")
    c_pw_floor = col("PW", "WITH 1")
    c_pe = col("PE", "GPCI", avoid=("PW",))
    c_mp = col("MP", "GPCI")
    if min(c_mac, c_loc, c_pw, c_pe, c_mp) < 0:
        raise ValueError(f"GPCI heading lacks a needed column: {names}")
    floor_until = None
    text = " ".join(" ".join(r) for r in rows)
    m = _FLOOR.search(text)
    if m:
        floor_until = datetime.strptime(m.group(1), "%B %d, %Y").date()
    gpcis = []
    for row in rows[start:]:
        if len(row) <= max(c_pw, c_pe, c_mp) or not row[c_mac].strip().isdigit():
            continue
        gpcis.append(
            [
                f"{row[c_mac].strip()}-{row[c_loc].strip().zfill(2)}",
                row[c_name].strip().rstrip("*").strip() if c_name >= 0 else "",
                _num(row[c_pw]),
                _num(row[c_pe]),
                _num(row[c_mp]),
                row[c_state].strip() if c_state >= 0 else "",
                _num(row[c_pw_floor]) if c_pw_floor >= 0 else None,
            ]
        )
    if not gpcis:
        raise ValueError("no GPCI rows found")
    year = int(re.sub(r"\D", "", version)[:4] or date.today().year)
    return {
        "kind": "mpfs-gpci",
        "meta": release_meta(
            "mpfs-gpci",
            "MPFS_GPCI",
            version,
            effective_from or date(year, 1, 1),
            effective_to or date(year, 12, 31),
            f"CMS PFS GPCI file (Addendum E): {path.name}",
            description=(
                f"Work GPCI 1.0 floor applied through {floor_until.isoformat()} (file footnote)"
                if floor_until
                else ""
            ),
        ),
        "floor_until": floor_until.isoformat() if floor_until else None,
        "gpcis": gpcis,
        **file_facts(path, len(gpcis)),
    }


def load_locco(
    path: str | Path,
    version: str,
    effective_from: date | None = None,
    effective_to: date | None = None,
) -> dict[str, Any]:
    """The counties-in-localities file; the state is carried down from the row that names it."""
    path = Path(path)
    rows = _rows(path)
    out: list[list[str]] = []
    state = ""
    for row in rows:
        if len(row) < 5 or not row[0].strip().isdigit() or not row[1].strip().isdigit():
            continue
        state = row[2].strip() or state
        out.append([row[0].strip(), row[1].strip().zfill(2), state, row[3].strip(), row[4].strip()])
    if not out:
        raise ValueError("no locality rows found")
    year = int(re.sub(r"\D", "", version)[:4] or date.today().year)
    return {
        "kind": "mpfs-locality",
        "meta": release_meta(
            "mpfs-locality",
            "MPFS_LOCALITY",
            version,
            effective_from or date(year, 1, 1),
            effective_to or date(year, 12, 31),
            f"CMS PFS counties included in localities: {path.name}",
        ),
        "localities": out,
        **file_facts(path, len(out)),
    }
