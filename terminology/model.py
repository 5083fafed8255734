"""Immutable in-memory tables: one object per loaded version of a code system or map.

A version is built once (from a compiled data file) and never mutated; loading a new
release adds a new version object beside the old ones, so lookups that are in flight keep
reading the snapshot they started with.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    # The window the publisher states for this release, when Billable applies it to a wider
    # one (e.g. the July RVU file answering every 2026 date of service); None = the same.
    official_from: date | None = None
    official_to: date | None = None

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
            **(
                {
                    "official_from": self.official_from.isoformat(),
                    "official_to": self.official_to.isoformat() if self.official_to else None,
                }
                if self.official_from
                else {}
            ),
        }

    def official(self, day: date) -> bool:
        """Is ``day`` inside the publisher's own window for this release?"""
        start = self.official_from or self.effective_from
        end = self.official_to if self.official_from else self.effective_to
        return start <= day and (end is None or day <= end)

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
            official_from=date.fromisoformat(data["official_from"])
            if data.get("official_from")
            else None,
            official_to=date.fromisoformat(data["official_to"])
            if data.get("official_to")
            else None,
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
    # A dict when a loader builds the version; an on-disk view (``terminology.disk_tables``)
    # when the service opens a compiled one.
    concepts: Mapping[str, Concept]
    # Instructional notes as written at each code: {code: {kind: [text, ...]}}.
    notes: Mapping[str, dict[str, list[str]]]
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
    entries: Mapping[str, tuple[MapTarget, ...]]
    source_displays: Mapping[str, str]


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
    """One row of the PFS relative value file (PPRRVU), indicators as CMS codes them."""

    code: str
    modifier: str
    status: str  # A R T payable, B bundled, C carrier priced, N non-covered, I not valid, ...
    work: float
    pe_nonfacility: float
    pe_facility: float
    malpractice: float
    global_days: str  # 000 010 090 MMM XXX YYY ZZZ
    conversion_factor: float | None = None
    pctc: str = "9"  # 0 no split, 1 PC/TC, 2 professional only, 3 technical only, 4 global ...
    mult_proc: str = "9"  # 0 none, 2 standard 100/50/50, 3 endoscopy, 4 imaging, 5-7 families
    bilateral: str = "9"  # 0 not allowed, 1 150%, 2 already bilateral, 3 each side 100%
    assistant: str = "9"  # 0 documentation, 1 not payable, 2 payable
    co_surgeon: str = "9"  # 0 not permitted, 1 documentation, 2 permitted
    team: str = "9"
    na_nonfacility: bool = False  # "NA": no non-facility PE (paid at the facility rate)
    endo_base: str = ""


@dataclass(frozen=True, slots=True)
class Gpci:
    locality: str  # "<MAC>-<locality number>", e.g. "01112-05"
    name: str
    work: float
    pe: float
    malpractice: float
    state: str = ""
    # The work GPCI with the statutory 1.0 floor, and the last day the floor applies.
    work_floor: float | None = None
    floor_until: date | None = None

    def work_on(self, day: date | None) -> float:
        if self.work_floor is not None and self.floor_until and day and day <= self.floor_until:
            return self.work_floor
        return self.work


@dataclass(frozen=True, slots=True)
class Locality:
    """A 26LOCCO row: which counties of a state form a PFS locality."""

    mac: str
    number: str
    state: str
    area: str
    counties: str

    @property
    def locality(self) -> str:
        return f"{self.mac}-{self.number}"


@dataclass(frozen=True, slots=True)
class AddOn:
    """An NCCI add-on code edit: ``addon`` is reported with one of its primary codes."""

    addon: str
    primary: str  # "CCCCC": contractor-defined primaries (type 2)
    edit_type: str  # 1 primaries listed, 2 contractor defined, 3 some listed, others possible
    effective: date
    deleted: date | None
    primary_deleted: date | None = None
    note: str = ""

    def in_force(self, day: date) -> bool:
        if self.deleted is not None and day > self.deleted:
            return False
        return self.effective <= day
