"""Immutable in-memory tables: one object per loaded version of a code system or map.

A version is built once (from a compiled data file) and never mutated; loading a new
release adds a new version object beside the old ones, so lookups that are in flight keep
reading the snapshot they started with.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from terminology.systems import canonical


@dataclass(frozen=True, slots=True)
class Meta:
    """Where a table came from and when it is in force."""

    url: str
    version: str
    name: str
    title: str
    effective_from: date
    effective_to: date | None
    source: str
    publisher: str = ""
    description: str = ""
    license: str = ""

    def covers(self, day: date) -> bool:
        return self.effective_from <= day and (
            self.effective_to is None or day <= self.effective_to
        )

    def period(self) -> str:
        end = self.effective_to.isoformat() if self.effective_to else "until superseded"
        return f"{self.effective_from.isoformat()} to {end}"

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "version": self.version,
            "name": self.name,
            "title": self.title,
            "effective_from": self.effective_from.isoformat(),
            "effective_to": self.effective_to.isoformat() if self.effective_to else None,
            "source": self.source,
            "publisher": self.publisher,
            "description": self.description,
            "license": self.license,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Meta:
        end = data.get("effective_to")
        return cls(
            url=canonical(data["url"]),  # compiled files may name an alias (HCPCS over http)
            version=str(data["version"]),
            name=data.get("name", ""),
            title=data.get("title", data.get("name", "")),
            effective_from=date.fromisoformat(data["effective_from"]),
            effective_to=date.fromisoformat(end) if end else None,
            source=data.get("source", ""),
            publisher=data.get("publisher", ""),
            description=data.get("description", ""),
            license=data.get("license", ""),
        )


@dataclass(slots=True)
class Concept:
    """One code. ``billable`` is False for headers (categories with subcodes)."""

    code: str
    display: str
    parent: str | None = None
    billable: bool = True
    manifestation: bool = False
    # Per-code validity inside a version (HCPCS add/termination dates); None = whole version.
    valid_from: date | None = None
    valid_to: date | None = None
    properties: dict[str, Any] | None = None
    # Filled in when a version is loaded; an empty tuple for leaves (saves memory).
    children: list[str] | tuple[()] = ()


NOTE_KINDS = (
    "includes",
    "inclusionTerm",
    "excludes1",
    "excludes2",
    "codeFirst",
    "useAdditionalCode",
    "codeAlso",
    "notes",
    "sevenChrNote",
)


@dataclass(frozen=True, slots=True)
class CodeSystemVersion:
    meta: Meta
    concepts: dict[str, Concept]
    # Instructional notes as written at each code: {code: {kind: [text, ...]}}.
    notes: dict[str, dict[str, list[str]]]
    # "complete" when every code of the release is present, "fragment" for shipped subsets.
    content: str = "complete"
    case_sensitive: bool = True

    def ancestors(self, code: str) -> list[str]:
        out: list[str] = []
        concept = self.concepts.get(code)
        while concept is not None and concept.parent:
            out.append(concept.parent)
            concept = self.concepts.get(concept.parent)
        return out

    def descendants(self, code: str) -> list[str]:
        """``code``'s subtree in code order, the code itself first."""
        out: list[str] = []
        stack = [code]
        while stack:
            current = stack.pop()
            out.append(current)
            concept = self.concepts.get(current)
            if concept is not None:
                stack.extend(reversed(concept.children))
        return out


@dataclass(frozen=True, slots=True)
class MapTarget:
    """One row of a concept map in the NLM extended-map model."""

    code: str | None  # None: the source cannot be mapped in this group ("no map")
    display: str
    equivalence: str  # FHIR R4 ConceptMapEquivalence
    map_group: int = 1
    map_priority: int = 1
    rule: str = "TRUE"  # human-readable rule, as in the NLM file
    sex: str | None = None  # "male" / "female" when the rule tests sex
    age_min: float | None = None  # in years, inclusive
    age_max: float | None = None  # in years, exclusive
    advice: str = ""


@dataclass(frozen=True, slots=True)
class ConceptMapVersion:
    meta: Meta
    source_system: str
    target_system: str
    # {source code: targets sorted by (map_group, map_priority)}
    entries: dict[str, tuple[MapTarget, ...]]
    source_displays: dict[str, str]


@dataclass(frozen=True, slots=True)
class PtpEdit:
    """An NCCI procedure-to-procedure edit: column 2 is not paid with column 1."""

    column1: str
    column2: str
    effective: date
    deleted: date | None
    modifier_indicator: str  # "0" never allowed, "1" allowed with a modifier, "9" not applicable
    rationale: str = ""
    setting: str = "practitioner"

    def in_force(self, day: date) -> bool:
        return self.effective <= day and (self.deleted is None or day < self.deleted)


@dataclass(frozen=True, slots=True)
class Mue:
    code: str
    units: int
    adjudication_indicator: str  # "1" line edit, "2" date-of-service policy, "3" date of service
    rationale: str
    setting: str = "practitioner"


@dataclass(frozen=True, slots=True)
class Rvu:
    code: str
    modifier: str
    status: str
    work: float
    pe_nonfacility: float
    pe_facility: float
    malpractice: float
    global_days: str
    conversion_factor: float | None = None


@dataclass(frozen=True, slots=True)
class Gpci:
    locality: str  # "<MAC>-<locality number>", e.g. "01112-05"
    name: str
    work: float
    pe: float
    malpractice: float
