"""Loaders for ICD-10-PCS, HCPCS Level II, CPT and Billable's curated tables.

Formats read:

* ICD-10-PCS: the CMS order file ``icd10pcs_order_YYYY.txt`` (fixed width: order number
  1-5, code 7-13, ``1`` valid / ``0`` header at 15, short title 17-76, long title 78-).
* HCPCS Level II: the CMS quarterly "alpha-numeric" file, either as CSV/TSV with its
  column headings (``HCPC``, ``LONG DESCRIPTION``, ``SHORT DESCRIPTION``, ``ADD DT``,
  ``ACT EFF DT``, ``TERM DT``; the .xlsx saved as CSV) or as the fixed-width ANWEB text
  (code 1-5, record id 11, long description 12-91, short description 92-119; continuation
  records 4 and 8 extend the description).
* CPT: the AMA data file a licensee receives, one code per line, code and descriptor
  separated by a tab or by spaces (``LONGULT.txt``-style), or CSV with ``code`` and
  ``description`` columns.
* Billable curated code systems and concept maps: ``#``-header + TSV, see
  ``load_curated_codesystem`` and ``load_curated_map``.
"""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

from terminology import maprules, systems
from terminology.loaders.release import read_bytes
from terminology.model import CodeSystemVersion, Concept, ConceptMapVersion, MapTarget, Meta


def _open_text(path: str | Path) -> str:
    raw = read_bytes(path)
    if raw[:2] == b"PK":  # the CMS quarterly zip: read its fixed-width ANWEB text member
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            names = [n for n in z.namelist() if n.upper().endswith(".TXT") and "ANWEB" in n.upper()]
            if not names:
                raise ValueError(f"{path}: no *ANWEB*.txt member in the zip")
            raw = z.read(names[0])
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1", errors="replace")


# ------------------------------------------------------------------ ICD-10-PCS
def load_pcs_order_file(
    path: str | Path,
    fiscal_year: int,
    effective_from: date | None = None,
    effective_to: date | None = None,
) -> CodeSystemVersion:
    meta = Meta(
        url=systems.ICD10PCS,
        version=str(fiscal_year),
        name="ICD10PCS",
        title=f"ICD-10-PCS FY{fiscal_year}",
        effective_from=effective_from or date(fiscal_year - 1, 10, 1),
        effective_to=effective_to or date(fiscal_year, 9, 30),
        source=f"CMS ICD-10-PCS order file: {Path(path).name}",
        publisher="CMS",
        license="Public domain (US Government work)",
    )
    concepts: dict[str, Concept] = {}
    for line in _open_text(path).splitlines():
        if len(line) < 16 or not line[:5].strip().isdigit():
            continue
        code = line[6:13].strip().upper()
        billable = line[14] == "1"
        display = line[77:].strip() or line[16:76].strip()
        parent = code[:3] if billable and code[:3] in concepts else None
        concepts[code] = Concept(code, display, parent, billable)
    if not concepts:
        raise ValueError("no ICD-10-PCS order records found")
    return CodeSystemVersion(meta, concepts, {}, "complete")


# ----------------------------------------------------------------------- HCPCS
def _date(value: str) -> date | None:
    value = (value or "").strip()
    if not value or value in ("0", "00000000"):
        return None
    for fmt in ("%Y%m%d", "%m/%d/%Y", "%Y-%m-%d", "%m/%d/%y"):
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    return None


def _norm(header: str) -> str:
    return " ".join(header.replace("_", " ").upper().split())


def load_hcpcs(
    path: str | Path, version: str, effective_from: date, effective_to: date | None = None
) -> CodeSystemVersion:
    text = _open_text(path)
    first = text.splitlines()[0] if text else ""
    concepts: dict[str, Concept] = {}
    if "HCPC" in first.upper() and ("," in first or "\t" in first):
        dialect = "excel-tab" if "\t" in first else "excel"
        reader = csv.DictReader(io.StringIO(text), dialect=dialect)
        for row in reader:
            r = {_norm(k): (v or "").strip() for k, v in row.items() if k}
            code = (r.get("HCPC") or r.get("HCPCS") or "").upper()
            if not code:
                continue
            if r.get("MOD") or r.get("MODIFIER"):
                continue  # modifier rows are not codes
            long = r.get("LONG DESCRIPTION", "")
            short = r.get("SHORT DESCRIPTION", "")
            existing = concepts.get(code)
            if existing is not None:  # continuation line of a long description
                existing.display = f"{existing.display} {long}".strip()
                continue
            concept = Concept(code, long or short, None, True)
            concept.valid_from = _date(r.get("ACT EFF DT", "")) or _date(r.get("ADD DT", ""))
            concept.valid_to = _date(r.get("TERM DT", ""))
            if short:
                concept.properties = {"designations": {"short": short}}
            concepts[code] = concept
    else:
        for line in text.splitlines():
            if len(line) < 12:
                continue
            code = line[0:5].strip().upper()
            record = line[10]
            long = line[11:91].strip()
            short = line[91:119].strip()
            if not code or record not in "3478":
                continue
            if record in "48":  # continuation of the description above
                if code in concepts:
                    concepts[code].display = f"{concepts[code].display} {long}".strip()
                continue
            if record == "7":
                # A modifier record (the code in columns 4-5): a non-billable concept.
                code = line[3:5].strip().upper() or code
                concept = Concept(code, long or short, None, False)
                concept.properties = {"kind": "modifier"}
            else:
                concept = Concept(code, long or short, None, True)
                props: dict[str, Any] = {}
                if short:
                    props["designations"] = {"short": short}
                pricing = line[119:121].strip() if len(line) > 121 else ""
                if pricing:
                    props["pricing"] = pricing
                concept.properties = props or None
            if len(line) >= 292:
                # Columns 269-276 code added, 285-292 termination (277-284, the action
                # effective date, dates the latest change, e.g. a new descriptor).
                concept.valid_from = _date(line[268:276])
                concept.valid_to = _date(line[284:292])
            concepts[code] = concept
    if not concepts:
        raise ValueError("no HCPCS records found")
    meta = Meta(
        url=systems.HCPCS,
        version=version,
        name="HCPCS",
        title=f"HCPCS Level II {version}",
        effective_from=effective_from,
        effective_to=effective_to,
        source=f"CMS HCPCS quarterly file: {Path(path).name}",
        publisher="CMS",
        license="Public domain (US Government work); D codes are CDT, (c) ADA",
    )
    return CodeSystemVersion(meta, concepts, {}, "complete")


# ------------------------------------------------------------------------- CPT
def load_cpt(
    path: str | Path, version: str, effective_from: date, effective_to: date | None = None
) -> CodeSystemVersion:
    """The user's licensed CPT file; never shipped with Billable."""
    text = _open_text(path)
    concepts: dict[str, Concept] = {}
    lines = text.splitlines()
    if lines and "," in lines[0] and "code" in lines[0].lower():
        for row in csv.DictReader(io.StringIO(text)):
            r = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            code = r.get("code") or r.get("cpt code") or ""
            desc = r.get("description") or r.get("long description") or ""
            if code:
                concepts[code.upper()] = Concept(code.upper(), desc, None, True)
    else:
        for line in lines:
            parts = line.split("\t", 1) if "\t" in line else line.split(None, 1)
            if len(parts) == 2 and len(parts[0].strip()) == 5:
                code = parts[0].strip().upper()
                concepts[code] = Concept(code, parts[1].strip(), None, True)
    if not concepts:
        raise ValueError("no CPT records found")
    meta = Meta(
        url=systems.CPT,
        version=version,
        name="CPT",
        title=f"CPT {version} (licensed file)",
        effective_from=effective_from,
        effective_to=effective_to,
        source=f"User-supplied AMA CPT file: {Path(path).name}",
        publisher="American Medical Association",
        license="CPT is (c) AMA; loaded from the user's licence, not redistributed",
    )
    return CodeSystemVersion(meta, concepts, {}, "complete")


# ------------------------------------------------------------ curated tables
def _header(text: str) -> tuple[dict[str, str], list[str]]:
    meta: dict[str, str] = {}
    body: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep and key.strip() and " " not in key.strip():
                meta[key.strip()] = value.strip()
            continue
        if line.strip():
            body.append(line)
    return meta, body


def _meta(
    fields: dict[str, str],
    version: str | None,
    effective_from: date | None,
    effective_to: date | None,
) -> Meta:
    start = effective_from or date.fromisoformat(fields["effective_from"])
    end = effective_to or (
        date.fromisoformat(fields["effective_to"]) if fields.get("effective_to") else None
    )
    return Meta(
        url=fields["url"],
        version=version or fields["version"],
        name=fields.get("name", ""),
        title=fields.get("title", fields.get("name", "")),
        effective_from=start,
        effective_to=end,
        source=fields.get("source", ""),
        publisher=fields.get("publisher", ""),
        description=fields.get("description", ""),
        license=fields.get("license", ""),
    )


def load_curated_codesystem(
    path: str | Path,
    version: str | None = None,
    effective_from: date | None = None,
    effective_to: date | None = None,
) -> CodeSystemVersion:
    """``# key: value`` header lines, then ``code<TAB>display[<TAB>parent<TAB>billable]``."""
    fields, body = _header(_open_text(path))
    concepts: dict[str, Concept] = {}
    for line in body:
        cols = line.split("\t")
        if cols[0] == "code":
            continue
        parent = cols[2].strip() or None if len(cols) > 2 else None
        billable = cols[3].strip().lower() not in ("false", "0", "no") if len(cols) > 3 else True
        concepts[cols[0].strip()] = Concept(cols[0].strip(), cols[1].strip(), parent, billable)
    cs = CodeSystemVersion(
        _meta(fields, version, effective_from, effective_to),
        concepts,
        {},
        fields.get("content", "fragment"),
    )
    for c in concepts.values():
        if c.parent and c.parent in concepts:
            parent_concept = concepts[c.parent]
            if not parent_concept.children:
                parent_concept.children = []
            parent_concept.children.append(c.code)
    return cs


MAP_COLUMNS = (
    "source_code",
    "source_display",
    "map_group",
    "map_priority",
    "map_rule",
    "map_advice",
    "target_code",
    "target_display",
    "equivalence",
)


def load_curated_map(
    path: str | Path,
    version: str | None = None,
    effective_from: date | None = None,
    effective_to: date | None = None,
) -> ConceptMapVersion:
    """A concept map as TSV with ``MAP_COLUMNS``; rules use Billable's short syntax
    (``sex=female``, ``age<28d``; several joined by ``;``) or ``TRUE``/``OTHERWISE TRUE``."""
    fields, body = _header(_open_text(path))
    entries: dict[str, list[MapTarget]] = {}
    displays: dict[str, str] = {}
    for line in body:
        cols = line.split("\t")
        if cols[0] == "source_code":
            continue
        row = dict(zip(MAP_COLUMNS, [c.strip() for c in cols], strict=False))
        rule = row.get("map_rule", "TRUE") or "TRUE"
        if rule.upper() in ("TRUE", "OTHERWISE TRUE"):
            sex, age_min, age_max = None, None, None
        else:
            sex, age_min, age_max = maprules.parse_short_rules(rule.split(";"))
        src = row["source_code"]
        displays.setdefault(src, row.get("source_display", ""))
        entries.setdefault(src, []).append(
            MapTarget(
                code=row.get("target_code") or None,
                display=row.get("target_display", ""),
                equivalence=row.get("equivalence") or "equivalent",
                map_group=int(row.get("map_group") or 1),
                map_priority=int(row.get("map_priority") or 1),
                rule=rule
                if rule.upper() in ("TRUE", "OTHERWISE TRUE")
                else maprules.describe(sex, age_min, age_max),
                sex=sex,
                age_min=age_min,
                age_max=age_max,
                advice=row.get("map_advice", ""),
            )
        )
    return ConceptMapVersion(
        meta=_meta(fields, version, effective_from, effective_to),
        source_system=systems.canonical(fields["source_system"]),
        target_system=systems.canonical(fields["target_system"]),
        entries={
            k: tuple(sorted(v, key=lambda t: (t.map_group, t.map_priority)))
            for k, v in entries.items()
        },
        source_displays=displays,
    )
