"""SNOMED CT loaders: an RF2 snapshot and NLM's SNOMED CT to ICD-10-CM map.

SNOMED CT is licensed (free in the US through the NLM UMLS licence): Billable ships only
the concept ids its maps need, with its own descriptions, and loads the user's release.

RF2 snapshot (tab-separated, first line the column names):

* ``sct2_Concept_Snapshot_*.txt``: id, effectiveTime, active, moduleId, definitionStatusId
* ``sct2_Description_Snapshot-en_*.txt``: id, effectiveTime, active, moduleId, conceptId,
  languageCode, typeId, term, caseSignificanceId (FSN typeId 900000000000003001, synonym
  900000000000013009)
* optionally ``sct2_Relationship_Snapshot_*.txt`` for the is-a (116680003) parents.

NLM map: ``tls_Icd10cmHumanReadableMap_*.tsv`` or the RF2 extended map refset
``der2_iisssciRefset_ExtendedMapSnapshot_*.txt`` with columns id, effectiveTime, active,
moduleId, refsetId, referencedComponentId, mapGroup, mapPriority, mapRule, mapAdvice,
mapTarget, correlationId, mapCategoryId.
"""

from __future__ import annotations

import csv
import re
from datetime import date, datetime
from pathlib import Path

from terminology import maprules, systems
from terminology.model import CodeSystemVersion, Concept, ConceptMapVersion, MapTarget, Meta

FSN = "900000000000003001"
SYNONYM = "900000000000013009"
IS_A = "116680003"
ICD10CM_REFSET = "6011000124106"
_CATEGORY_EQUIVALENCE = {
    "447637006": "equivalent",  # map source concept is properly classified
    "447638001": "unmatched",  # cannot be classified with available data
    "447639009": "unmatched",  # context dependent
    "447640006": "unmatched",  # source concept is ambiguous
    "447635003": "unmatched",  # not classifiable (guidance)
}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


def _find(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.rglob(pattern))
    return found[0] if found else None


def _rf2_date(value: str) -> date:
    return datetime.strptime(value, "%Y%m%d").date()


def load_rf2(
    path: str | Path,
    version: str | None = None,
    effective_from: date | None = None,
    effective_to: date | None = None,
) -> CodeSystemVersion:
    """Load a snapshot: ``path`` is the release folder (or its concept file)."""
    root = Path(path)
    folder = root if root.is_dir() else root.parent
    concept_file = _find(folder, "sct2_Concept_*Snapshot*.txt")
    description_file = _find(folder, "sct2_Description_*Snapshot*.txt")
    if concept_file is None or description_file is None:
        raise ValueError(f"{folder}: no sct2_Concept/sct2_Description snapshot files")
    active: dict[str, bool] = {}
    latest = date(1900, 1, 1)
    for row in _rows(concept_file):
        active[row["id"]] = row["active"] == "1"
        latest = max(latest, _rf2_date(row["effectiveTime"]))
    fsn: dict[str, str] = {}
    preferred: dict[str, str] = {}
    for row in _rows(description_file):
        if row["active"] != "1":
            continue
        if row["typeId"] == FSN:
            fsn[row["conceptId"]] = row["term"]
        elif row["typeId"] == SYNONYM:
            preferred.setdefault(row["conceptId"], row["term"])
    parents: dict[str, str] = {}
    rel_file = _find(folder, "sct2_Relationship_*Snapshot*.txt")
    if rel_file is not None:
        for row in _rows(rel_file):
            if row["active"] == "1" and row["typeId"] == IS_A:
                parents.setdefault(row["sourceId"], row["destinationId"])
    concepts: dict[str, Concept] = {}
    for cid, is_active in active.items():
        display = preferred.get(cid) or fsn.get(cid) or ""
        concept = Concept(cid, display, parents.get(cid), is_active)
        if cid in fsn:
            concept.properties = {"designations": {"fsn": fsn[cid]}, "active": is_active}
        concepts[cid] = concept
    for c in concepts.values():
        if c.parent and c.parent in concepts:
            p = concepts[c.parent]
            if not p.children:
                p.children = []
            p.children.append(c.code)
    stamp = re.search(r"_(\d{8})\.txt$", concept_file.name)
    if stamp:  # the release date in the file name, e.g. ..._US1000124_20250901.txt
        latest = max(latest, _rf2_date(stamp.group(1)))
    meta = Meta(
        url=systems.SNOMED,
        version=version or latest.strftime("%Y%m%d"),
        name="SNOMED_CT",
        title=f"SNOMED CT ({concept_file.name})",
        effective_from=effective_from or latest,
        effective_to=effective_to,
        source=f"User-supplied SNOMED CT RF2 snapshot: {folder.name}",
        publisher="SNOMED International / NLM",
        license="SNOMED CT affiliate licence of the user; not redistributed",
    )
    return CodeSystemVersion(meta, concepts, {}, "complete")


def load_extended_map(
    path: str | Path,
    version: str | None = None,
    effective_from: date | None = None,
    effective_to: date | None = None,
) -> ConceptMapVersion:
    """NLM's SNOMED CT to ICD-10-CM map (extended map refset) as a concept map."""
    rows = _rows(Path(path))
    if not rows or "mapTarget" not in rows[0]:
        raise ValueError("not an extended map file (no mapTarget column)")
    entries: dict[str, list[MapTarget]] = {}
    displays: dict[str, str] = {}
    latest = date(1900, 1, 1)
    for row in rows:
        if row.get("active", "1") != "1":
            continue
        if row.get("refsetId", ICD10CM_REFSET) != ICD10CM_REFSET:
            continue
        latest = max(latest, _rf2_date(row["effectiveTime"]))
        source = row["referencedComponentId"]
        if row.get("referencedComponentName"):
            displays[source] = row["referencedComponentName"]
        target = (row.get("mapTarget") or "").strip() or None
        rule = (row.get("mapRule") or "TRUE").strip()
        sex, age_min, age_max = maprules.parse_nlm_rule(rule)
        category = row.get("mapCategoryId", "")
        equivalence = _CATEGORY_EQUIVALENCE.get(category, "equivalent" if target else "unmatched")
        if target is None:
            equivalence = "unmatched"
        entries.setdefault(source, []).append(
            MapTarget(
                code=target,
                display=row.get("mapTargetName", "") or "",
                equivalence=equivalence,
                map_group=int(row.get("mapGroup") or 1),
                map_priority=int(row.get("mapPriority") or 1),
                rule=rule,
                sex=sex,
                age_min=age_min,
                age_max=age_max,
                advice=(row.get("mapAdvice") or "").strip(),
            )
        )
    if not entries:
        raise ValueError("no active ICD-10-CM map rows found")
    meta = Meta(
        url=f"{systems.BILLABLE_BASE}/ConceptMap/nlm-snomed-icd10cm",
        version=version or latest.strftime("%Y%m%d"),
        name="NLM_SNOMED_ICD10CM",
        title="NLM SNOMED CT to ICD-10-CM map",
        effective_from=effective_from or latest,
        effective_to=effective_to,
        source=f"NLM SNOMED CT to ICD-10-CM map: {Path(path).name}",
        publisher="U.S. National Library of Medicine",
        license="Part of the US Edition of SNOMED CT; user's licence",
    )
    return ConceptMapVersion(
        meta,
        systems.SNOMED,
        systems.ICD10CM,
        {
            k: tuple(sorted(v, key=lambda t: (t.map_group, t.map_priority)))
            for k, v in entries.items()
        },
        displays,
    )
