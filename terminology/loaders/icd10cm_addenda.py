"""A new ICD-10-CM fiscal year from the previous code set plus the CMS order-file addenda.

``icd10cm_order_addenda_YYYY.txt`` (inside CMS's ``YYYY-code-descriptions-tabular-order``
zip) lists every change from the previous order file::

    Add:         1 C7831   <short title, 60 characters>  <long title>
    Delete:      1 D691    ...
    Add:         0 D691    ...        (D69.1 stays, now a header: the flag is 0)
    Revise from: 1 L02232  ...
    Revise to:   1 L02232  ...

then a summary block ("190 additions", "30 deletions", "4 revisions" under "Codes"). The
flag is ``1`` for a valid (billable) code and ``0`` for a header. Applying it to the
previous fiscal year gives the new one: deletions drop codes (a Delete followed by an
Add of the same code is a flag change, the code stays with its notes), additions hang
under their longest existing prefix, revisions change titles. Instructional notes of the
previous year are kept; new codes inherit their ancestors' notes through the hierarchy
(the order file carries no notes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

from terminology.icd10cm_edits import age_sex_restriction
from terminology.loaders.icd10cm import _dotted, fiscal_year_meta
from terminology.loaders.release import read_text
from terminology.model import CodeSystemVersion, Concept

_LINE = re.compile(r"^(Add|Delete|Revise from|Revise to):\s+([01]) (\S+)\s")
_MANIFESTATION = re.compile(r"in diseases classified elsewhere", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Change:
    action: str  # add, delete, revise-from, revise-to
    billable: bool
    code: str  # dotted
    short: str
    long: str


@dataclass(slots=True)
class Addenda:
    changes: list[Change]
    # The summary block's own figures: {("codes"|"headers", "additions"|...): n}
    summary: dict[tuple[str, str], int] = field(default_factory=dict)

    def codes(self, action: str, billable: bool = True) -> set[str]:
        return {c.code for c in self.changes if c.action == action and c.billable == billable}


def read_addenda(path: str | Path) -> Addenda:
    changes: list[Change] = []
    summary: dict[tuple[str, str], int] = {}
    section = ""
    for line in read_text(path).splitlines():
        m = _LINE.match(line)
        if m:
            action = m.group(1).lower().replace(" ", "-")
            # Fixed columns: flag at 14, code 16-23, short title 24-83, long title 85-.
            short, long = line[23:83].strip(), line[84:].strip()
            changes.append(Change(action, m.group(2) == "1", _dotted(m.group(3)), short, long))
            continue
        word = line.strip().lower()
        if word in ("codes", "headers"):
            section = word
            continue
        figure = re.match(r"^\s*(\d+)\s+(additions|deletions|revisions)$", line)
        if figure and section:
            summary[(section, figure.group(2))] = int(figure.group(1))
    if not changes:
        raise ValueError(f"{path}: no Add/Delete/Revise lines (not an order-file addenda)")
    return Addenda(changes, summary)


def apply_addenda(
    base: CodeSystemVersion,
    addenda: Addenda,
    fiscal_year: int,
    source: str,
    effective_from: date | None = None,
    effective_to: date | None = None,
) -> CodeSystemVersion:
    """The code set of ``fiscal_year``: ``base`` with the addenda applied (``base`` is not
    modified)."""
    concepts = {code: replace(c, children=()) for code, c in base.concepts.items()}
    notes = dict(base.notes)
    deleted = [c.code for c in addenda.changes if c.action == "delete"]
    readded = {c.code for c in addenda.changes if c.action == "add"}
    for code in deleted:
        if code not in concepts:
            raise ValueError(f"addenda deletes {code}, which the base code set lacks")
        if code not in readded:
            del concepts[code]
            notes.pop(code, None)
    for change in addenda.changes:
        if change.action == "add":
            existing = concepts.get(change.code)
            if existing is not None:  # a flag change (e.g. D69.1 becomes a header)
                existing.billable = change.billable
                existing.display = change.long or existing.display
                continue
            concept = Concept(
                change.code,
                change.long or change.short,
                _parent(change.code, concepts),
                change.billable,
                bool(_MANIFESTATION.search(change.long)),
            )
            props = dict(age_sex_restriction(change.code))
            if concept.parent is None:  # a new category: the chapter and block of its neighbour
                props.update(_classification(change.code, concepts))
            concept.properties = props or None
            concepts[change.code] = concept
        elif change.action == "revise-to":
            if change.code not in concepts:
                raise ValueError(f"addenda revises {change.code}, which the code set lacks")
            concepts[change.code].display = change.long or change.short
    # Parents of codes that were kept keep pointing at codes that still exist.
    for concept in concepts.values():
        if concept.parent is not None and concept.parent not in concepts:
            concept.parent = _parent(concept.code, concepts)
    meta = fiscal_year_meta(fiscal_year, source)
    meta = replace(
        meta,
        effective_from=effective_from or meta.effective_from,
        effective_to=effective_to or meta.effective_to,
        title=f"ICD-10-CM FY{fiscal_year}",
    )
    return CodeSystemVersion(meta=meta, concepts=concepts, notes=notes, content="complete")


def _classification(code: str, concepts: dict[str, Concept]) -> dict[str, str]:
    before = [c for c, x in concepts.items() if x.parent is None and c < code]
    if not before:
        return {}
    props = concepts[max(before)].properties or {}
    return {k: v for k, v in props.items() if k in ("chapter", "block")}


def _parent(code: str, concepts: dict[str, Concept]) -> str | None:
    bare = code.replace(".", "")
    for cut in range(len(bare) - 1, 2, -1):
        candidate = _dotted(bare[:cut])
        if candidate in concepts:
            return candidate
        # 7th-character codes: the placeholder X may pad the prefix (S12.0XXA -> S12.0)
        stripped = candidate.rstrip("X")
        if stripped != candidate and stripped in concepts:
            return stripped
    return bare[:3] if bare[:3] in concepts else None


def load_with_addenda(
    base: CodeSystemVersion,
    path: str | Path,
    fiscal_year: int | None = None,
    effective_from: date | None = None,
    effective_to: date | None = None,
) -> CodeSystemVersion:
    """``billable terminology load icd10cm-addenda FILE``: the year after ``base``."""
    year = fiscal_year or int(base.meta.version) + 1
    name = Path(path).name
    source = (
        f"{base.meta.source} + CMS ICD-10-CM order-file addenda {name} "
        f"(applied by Billable to FY{base.meta.version})"
    )
    return apply_addenda(base, read_addenda(path), year, source, effective_from, effective_to)
