"""Compiled data files: the compact, precomputed form every table is loaded from.

A compiled file is gzip'd JSON with a ``kind`` (codesystem, conceptmap, ncci-ptp, mue,
mpfs-rvu, mpfs-gpci), a ``meta`` block (source, version, effective dates) and rows as
plain lists, so start-up is one ``orjson.loads`` per file and never touches the raw
release files. Loaders turn official release files into this form; the shipped files
under ``terminology/data/`` were produced by the same loaders.
"""

from __future__ import annotations

import gzip
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from terminology.catalog_supplement import supplement_concepts
from terminology.model import (
    AddOn,
    CodeSystemVersion,
    Concept,
    ConceptMapVersion,
    Gpci,
    Locality,
    MapTarget,
    Meta,
    Mue,
    PtpEdit,
    Rvu,
)
from terminology.systems import canonical

FORMAT = "billable-terminology/1"
SHIPPED_DIR = Path(__file__).parent / "data"

BILLABLE = 1
MANIFESTATION = 2


def read_file(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rb") as fh:
        data: dict[str, Any] = orjson.loads(fh.read())
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a compiled Billable terminology file")
    return data


def write_file(path: Path, data: dict[str, Any]) -> Path:
    """Write atomically: a watcher never sees half a file."""
    data = {"format": FORMAT, **data}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as fh:
        fh.write(orjson.dumps(data))
    os.replace(tmp, path)
    return path


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def concept_row(c: Concept) -> list[Any]:
    flags = (BILLABLE if c.billable else 0) | (MANIFESTATION if c.manifestation else 0)
    row: list[Any] = [c.code, c.display, c.parent, flags]
    extra = [
        c.valid_from.isoformat() if c.valid_from else None,
        c.valid_to.isoformat() if c.valid_to else None,
        c.properties,
    ]
    while extra and extra[-1] is None:
        extra.pop()
    return row + extra


def codesystem_to_json(cs: CodeSystemVersion) -> dict[str, Any]:
    return {
        "kind": "codesystem",
        "meta": cs.meta.to_json(),
        "content": cs.content,
        "concepts": [concept_row(c) for c in cs.concepts.values()],
        "notes": cs.notes,
    }


def codesystem_from_json(data: dict[str, Any]) -> CodeSystemVersion:
    concepts: dict[str, Concept] = {}
    intern = sys.intern  # versions of one system share most codes and titles
    for row in data["concepts"]:
        n = len(row)
        concept = Concept(
            code=intern(row[0]),
            display=intern(row[1]),
            parent=row[2],
            billable=bool(row[3] & BILLABLE),
            manifestation=bool(row[3] & MANIFESTATION),
            valid_from=_day(row[4]) if n > 4 else None,
            valid_to=_day(row[5]) if n > 5 else None,
            properties=row[6] if n > 6 else None,
        )
        concepts[concept.code] = concept
    for concept in concepts.values():
        if concept.parent is not None:
            parent = concepts.get(concept.parent)
            if parent is not None:
                if not parent.children:
                    parent.children = []
                parent.children.append(concept.code)
    meta = Meta.from_json(data["meta"])
    content = data.get("content", "complete")
    # Codes Billable emits that a release lacks (the CPT modifiers, which neither the RVU
    # file's code list nor an AMA procedure file carries; CDT numbers the rule tables use):
    # see terminology/catalog_supplement.py. A code the release has keeps its own row.
    for concept in supplement_concepts(meta.url):
        concepts.setdefault(concept.code, concept)
    return CodeSystemVersion(
        meta=meta,
        concepts=concepts,
        notes=data.get("notes") or {},
        content=content,
    )


def map_row(source: str, t: MapTarget) -> list[Any]:
    return [
        source,
        t.code,
        t.display,
        t.equivalence,
        t.map_group,
        t.map_priority,
        t.rule,
        t.sex,
        t.age_min,
        t.age_max,
        t.advice,
    ]


def conceptmap_to_json(cm: ConceptMapVersion) -> dict[str, Any]:
    rows = [map_row(src, t) for src, targets in cm.entries.items() for t in targets]
    return {
        "kind": "conceptmap",
        "meta": cm.meta.to_json(),
        "source": cm.source_system,
        "target": cm.target_system,
        "source_displays": cm.source_displays,
        "entries": rows,
    }


def _same_target(a: MapTarget, b: MapTarget) -> bool:
    """Rows that say the same thing (only their priority differs)."""
    return (a.code, a.equivalence, a.map_group, a.rule, a.sex, a.age_min, a.age_max) == (
        b.code,
        b.equivalence,
        b.map_group,
        b.rule,
        b.sex,
        b.age_min,
        b.age_max,
    )


def conceptmap_from_json(data: dict[str, Any]) -> ConceptMapVersion:
    """A compiled map; a target repeated for one source (same group, rule and conditions,
    another priority: the curated SNOMED CT -> ICD-10-CM file has some) is kept once."""
    grouped: dict[str, list[MapTarget]] = {}
    for r in data["entries"]:
        grouped.setdefault(r[0], []).append(
            MapTarget(
                code=r[1],
                display=r[2],
                equivalence=r[3],
                map_group=r[4],
                map_priority=r[5],
                rule=r[6],
                sex=r[7],
                age_min=r[8],
                age_max=r[9],
                advice=r[10],
            )
        )
    entries: dict[str, tuple[MapTarget, ...]] = {}
    for src, ts in grouped.items():
        kept: list[MapTarget] = []
        for t in sorted(ts, key=lambda t: (t.map_group, t.map_priority)):
            if not any(_same_target(t, k) for k in kept):
                kept.append(t)
        entries[src] = tuple(kept)
    return ConceptMapVersion(
        meta=Meta.from_json(data["meta"]),
        source_system=canonical(data["source"]),
        target_system=canonical(data["target"]),
        entries=entries,
        source_displays=data.get("source_displays") or {},
    )


def ptp_from_json(data: dict[str, Any]) -> list[PtpEdit]:
    setting = data.get("setting", "practitioner")
    return [
        PtpEdit(r[0], r[1], date.fromisoformat(r[2]), _day(r[3]), r[4], r[5], setting)
        for r in data["edits"]
    ]


def ptp_to_rows(edits: list[PtpEdit]) -> list[list[Any]]:
    return [
        [
            e.column1,
            e.column2,
            e.effective.isoformat(),
            e.deleted.isoformat() if e.deleted else None,
            e.modifier_indicator,
            e.rationale,
        ]
        for e in edits
    ]


def mue_from_json(data: dict[str, Any]) -> list[Mue]:
    setting = data.get("setting", "practitioner")
    return [Mue(r[0], int(r[1]), r[2], r[3], setting) for r in data["mues"]]


def rvu_from_json(data: dict[str, Any]) -> list[Rvu]:
    """Rows of 9 (the earlier compiled form) or 17 columns (every PPRRVU indicator)."""
    cf = data.get("conversion_factor")
    out = []
    for r in data["rvus"]:
        base = (r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8] if len(r) > 8 else cf)
        if len(r) >= 17:
            out.append(Rvu(*base, r[9], r[10], r[11], r[12], r[13], r[14], bool(r[15]), r[16]))
        else:
            out.append(Rvu(*base))
    return out


def gpci_from_json(data: dict[str, Any]) -> list[Gpci]:
    until = _day(data.get("floor_until"))
    return [
        Gpci(
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5] if len(r) > 5 else "",
            r[6] if len(r) > 6 else None,
            until,
        )
        for r in data["gpcis"]
    ]


def locality_from_json(data: dict[str, Any]) -> list[Locality]:
    return [Locality(*r) for r in data["localities"]]


def aoc_from_json(data: dict[str, Any]) -> list[AddOn]:
    return [
        AddOn(r[0], r[1], r[2], date.fromisoformat(r[3]), _day(r[4]), _day(r[5]), r[6])
        for r in data["aoc"]
    ]
