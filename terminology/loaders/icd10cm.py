"""ICD-10-CM loaders: the CDC tabular XML (full notes) and the CMS order file (codes only).

The tabular XML (``icd10cm-tabular-YYYY.xml``) is the source of the shipped versions: it
carries the hierarchy, the instructional notes and the 7th-character definitions. Codes
that take a 7th character are not listed in the XML; they are generated here the way the
conventions describe them: the code is padded with the placeholder ``X`` to six
characters and each character of the nearest ``sevenChrDef`` above it is appended
(``T14.90`` + ``A`` -> ``T14.90XA``). The code they extend becomes a header.

The CMS order file (``icd10cm-order-YYYY.txt``, fixed width) lists every code with its
header/valid flag and short and long titles, but no notes; use it when only that file is
at hand.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import date
from pathlib import Path

from terminology.icd10cm_edits import age_sex_restriction
from terminology.model import NOTE_KINDS, CodeSystemVersion, Concept, Meta
from terminology.systems import ICD10CM

_MANIFESTATION = re.compile(r"in diseases classified elsewhere", re.IGNORECASE)


def fiscal_year_meta(fiscal_year: int, source: str, release: str = "") -> Meta:
    """ICD-10-CM fiscal year ``N`` is in force 1 October N-1 to 30 September N."""
    return Meta(
        url=ICD10CM,
        version=str(fiscal_year),
        name="ICD10CM",
        title=f"ICD-10-CM FY{fiscal_year}" + (f" ({release})" if release else ""),
        effective_from=date(fiscal_year - 1, 10, 1),
        effective_to=date(fiscal_year, 9, 30),
        source=source,
        publisher="CDC National Center for Health Statistics / CMS",
        license="Public domain (US Government work)",
    )


def _dotted(code: str) -> str:
    code = code.strip().upper()
    return code if "." in code or len(code) <= 3 else f"{code[:3]}.{code[3:]}"


def _seventh(code: str, char: str) -> str:
    bare = code.replace(".", "").ljust(6, "X")
    return f"{bare[:3]}.{bare[3:]}{char}"


def _seventh_applies(code: str, char: str) -> bool:
    """The one exception the tabular states in prose (sevenChrNote at S06): 7th characters
    D and S do not apply to S06 codes whose 6th character is 7 or 8 (death before regaining
    consciousness)."""
    bare = code.replace(".", "")
    return not (bare.startswith("S06") and len(bare) == 6 and bare[5] in "78" and char in "DS")


def _notes(elem: ET.Element) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for kind in NOTE_KINDS:
        for block in elem.findall(kind):
            texts = [(n.text or "").strip() for n in block.findall("note")]
            texts = [t for t in texts if t]
            if texts:
                out.setdefault(kind, []).extend(texts)
    return out


def load_tabular_xml(
    path: str | Path,
    fiscal_year: int | None = None,
    effective_from: date | None = None,
    effective_to: date | None = None,
    release: str = "",
) -> CodeSystemVersion:
    """Read a CDC ICD-10-CM tabular XML file into a complete code system version."""
    root = ET.parse(path).getroot()
    if fiscal_year is None:
        version_text = (root.findtext("version") or "").strip()
        if not version_text.isdigit():
            raise ValueError(f"{path}: no <version>; pass the fiscal year")
        fiscal_year = int(version_text)
    meta = fiscal_year_meta(
        fiscal_year, f"CDC/NCHS ICD-10-CM tabular XML: {Path(path).name}", release
    )
    meta = replace(
        meta,
        effective_from=effective_from or meta.effective_from,
        effective_to=effective_to or meta.effective_to,
    )

    concepts: dict[str, Concept] = {}
    notes: dict[str, dict[str, list[str]]] = {}

    def add(concept: Concept, props: dict[str, str]) -> None:
        restriction = age_sex_restriction(concept.code)
        merged = {**props, **restriction}
        concept.properties = merged or None
        concepts[concept.code] = concept

    def visit(
        elem: ET.Element,
        parent: str | None,
        seven: dict[str, str] | None,
        manifest: bool,
        where: dict[str, str],
    ) -> None:
        code = _dotted(elem.findtext("name") or "")
        display = (elem.findtext("desc") or "").strip()
        own_seven = elem.find("sevenChrDef")
        if own_seven is not None:
            seven = {
                ext.get("char", ""): (ext.text or "").strip()
                for ext in own_seven.findall("extension")
            }
        is_manifest = manifest or bool(_MANIFESTATION.search(display))
        own_notes = _notes(elem)
        if own_notes:
            notes[code] = own_notes
        subs = elem.findall("diag")
        billable = not subs and not seven
        add(Concept(code, display, parent, billable, is_manifest), where if parent is None else {})
        for sub in subs:
            visit(sub, code, seven, is_manifest, where)
        if not subs and seven:
            for char, meaning in seven.items():
                if not _seventh_applies(code, char):
                    continue
                full = _seventh(code, char)
                add(Concept(full, f"{display}, {meaning}", code, True, is_manifest), {})

    for chapter in root.iter("chapter"):
        chapter_no = (chapter.findtext("name") or "").strip()
        for section in chapter.findall("section"):
            where = {"chapter": chapter_no, "block": section.get("id", "")}
            for diag in section.findall("diag"):
                visit(diag, None, None, False, where)
    return CodeSystemVersion(meta=meta, concepts=concepts, notes=notes, content="complete")


def load_order_file(
    path: str | Path,
    fiscal_year: int,
    effective_from: date | None = None,
    effective_to: date | None = None,
) -> CodeSystemVersion:
    """Read a CMS ``icd10cm-order`` file: order(5) code(7) header-flag(1) short(60) long.

    Columns (1-based): 1-5 order number, 7-13 code without dot, 15 ``1`` billable / ``0``
    header, 17-76 short title, 78- long title. Parents come from the code prefixes.
    """
    meta = fiscal_year_meta(fiscal_year, f"CMS ICD-10-CM order file: {Path(path).name}")
    meta = replace(
        meta,
        effective_from=effective_from or meta.effective_from,
        effective_to=effective_to or meta.effective_to,
    )
    concepts: dict[str, Concept] = {}
    with open(path, encoding="latin-1") as fh:
        for line in fh:
            if len(line) < 16 or not line[:5].strip().isdigit():
                continue
            code = _dotted(line[6:13].strip())
            billable = line[14] == "1"
            display = line[77:].strip() or line[16:76].strip()
            bare = code.replace(".", "")
            parent = None
            for cut in range(len(bare) - 1, 2, -1):
                candidate = _dotted(bare[:cut])
                if candidate in concepts:
                    parent = candidate
                    break
            if parent is None and len(bare) > 3 and bare[:3] in concepts:
                parent = bare[:3]
            concept = Concept(code, display, parent, billable, bool(_MANIFESTATION.search(display)))
            concept.properties = age_sex_restriction(code) or None
            concepts[code] = concept
    return CodeSystemVersion(meta=meta, concepts=concepts, notes={}, content="complete")
