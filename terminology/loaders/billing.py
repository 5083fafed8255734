"""Loader for the CMS NCCI procedure-to-procedure (PTP) edit files.

* NCCI procedure-to-procedure (PTP) edits, the quarterly practitioner or hospital file as
  text (tab-separated, a few heading lines, then rows: column 1, column 2, "in existence
  prior to 1996" flag, effective date YYYYMMDD, deletion date YYYYMMDD or ``*``, modifier
  indicator 0/1/9, rationale) or the same columns as CSV.
MUE and AOC files are read by ``terminology.loaders.ncci``; the fee schedule files (PPRRVU,
GPCI, LOCCO) by ``terminology.loaders.cms_mpfs``.

Returns a compiled table (a dict in the ``terminology.store`` format).
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
