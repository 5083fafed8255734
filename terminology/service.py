"""``TerminologyService``: versioned code systems, maps, edits and fees behind one API.

Every table is immutable once loaded and addressed by its effective dates, so a claim for
a past date of service is coded and edited with the tables in force on that date. New
releases are added (``billable terminology load``) as compiled files in a data directory;
the service notices a changed ``index.json`` (checked at most every ``watch_interval``
seconds, on the next call) or on an explicit ``reload()``, and swaps in a new snapshot
while calls in flight finish on the old one.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from terminology import systems
from terminology.catalog import Entry, index_mtime, read_index
from terminology.icd10cm_edits import conflicts
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
from terminology.store import SHIPPED_DIR

DEFAULT_DATA_DIR = Path(os.environ.get("BILLABLE_TERMINOLOGY_DIR", "data/terminology"))


class TerminologyError(Exception):
    """A terminology question that has no answer; ``kind`` says why."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # unknown-system, unknown-version, unknown-code, not-effective, ...
        self.message = message


@dataclass(frozen=True, slots=True)
class Note:
    kind: str  # excludes1, codeFirst, useAdditionalCode, ...
    text: str
    at: str  # the code the note is written at (the code itself or an ancestor)


@dataclass(slots=True)
class LookupResult:
    system: str
    meta: Meta
    concept: Concept
    ancestors: list[tuple[str, str]]
    children: list[tuple[str, str]]
    notes: list[Note]
    warnings: list[str] = field(default_factory=list)
    # Properties held once at the top of the hierarchy (ICD-10-CM chapter and block).
    classification: dict[str, str] = field(default_factory=dict)

    @property
    def display(self) -> str:
        return self.concept.display

    def property(self, name: str) -> Any:
        return (self.concept.properties or {}).get(name)


@dataclass(slots=True)
class ValidationResult:
    valid: bool
    reason: str  # valid, unknown-system, unknown-code, not-billable, not-effective, not-in-valueset
    message: str
    system: str
    code: str
    display: str | None = None
    version: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ExpansionItem:
    system: str
    version: str
    code: str
    display: str
    abstract: bool


@dataclass(slots=True)
class Expansion:
    url: str
    total: int
    offset: int
    items: list[ExpansionItem]
    versions: list[tuple[str, str]]  # (system, version) used


@dataclass(frozen=True, slots=True)
class TranslateMatch:
    target_system: str
    code: str | None
    display: str
    equivalence: str
    map_group: int
    map_priority: int
    rule: str
    advice: str
    map_url: str
    map_version: str
    rule_evaluated: bool  # False when the rule needs an age or sex that was not given


@dataclass(slots=True)
class FeeResult:
    code: str
    modifier: str
    amount: float
    facility: bool
    locality: str
    rvu: Rvu
    gpci: Gpci
    conversion_factor: float
    rvu_version: str
    gpci_version: str

    @property
    def global_days(self) -> str:
        return self.rvu.global_days


@dataclass(frozen=True, slots=True)
class _Snapshot:
    entries: tuple[Entry, ...]

    def of(self, kind: str, url: str | None = None) -> list[Entry]:
        return [e for e in self.entries if e.kind == kind and (url is None or e.meta.url == url)]


def _pick(entries: list[Entry], day: date | None) -> tuple[Entry | None, list[str]]:
    """The entry in force on ``day`` (the most recently effective wins), or the nearest one
    with a warning when no loaded version covers the day."""
    if not entries:
        return None, []
    ordered = sorted(entries, key=lambda e: e.meta.effective_from)

    # A complete release (e.g. a loaded SNOMED CT snapshot) wins over a shipped fragment;
    # between equals, the one listed last (the user's data directory comes after the shipped
    # tables) wins, so a loaded release replaces a shipped one with the same dates.
    position = {id(e): i for i, e in enumerate(entries)}

    def rank(e: Entry) -> tuple[bool, date, int]:
        complete = e.extra.get("content", "complete") != "fragment"
        return complete, e.meta.effective_from, position[id(e)]

    if day is None:
        return max(ordered, key=rank), []
    covering = [e for e in ordered if e.meta.covers(day)]
    if covering:
        return max(covering, key=rank), []
    later = [e for e in ordered if e.meta.effective_from > day]
    chosen = ordered[-1] if not later else later[0]
    if chosen is ordered[-1] and (chosen.meta.effective_to or day) < day:
        return chosen, [
            f"No {chosen.meta.name} release loaded for {day.isoformat()}; answered from "
            f"version {chosen.meta.version} ({chosen.meta.period()}). Load the newer release."
        ]
    return None, []


class TerminologyService:
    """Thread-safe, read-mostly facade over every loaded terminology table."""

    def __init__(
        self,
        data_dir: Path | str | None = None,
        include_shipped: bool = True,
        watch_interval: float = 2.0,
    ) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
        self.include_shipped = include_shipped
        self.watch_interval = watch_interval
        self._lock = threading.Lock()
        self._checked = 0.0
        self._mtimes: tuple[float, float] = (0.0, 0.0)
        self._snapshot = _Snapshot(())
        self._haystacks: dict[tuple[str, str, date], dict[str, str]] = {}
        self.reload()

    # ----------------------------------------------------------------- catalogue
    def _dirs(self) -> list[Path]:
        return ([SHIPPED_DIR] if self.include_shipped else []) + [self.data_dir]

    def reload(self) -> None:
        """Re-read the indexes; tables already loaded from an unchanged file are kept."""
        with self._lock:
            old = {(e.path, e.meta.effective_from): e for e in self._snapshot.entries}
            fresh: list[Entry] = []
            for directory in self._dirs():
                for entry in read_index(directory):
                    previous = old.get((entry.path, entry.meta.effective_from))
                    same = previous is not None and previous.meta == entry.meta
                    fresh.append(previous if same and previous is not None else entry)
            self._snapshot = _Snapshot(tuple(fresh))
            self._mtimes = (index_mtime(SHIPPED_DIR), index_mtime(self.data_dir))
            self._checked = time.monotonic()

    def maybe_reload(self) -> None:
        """Pick up versions added by ``billable terminology load`` while running."""
        now = time.monotonic()
        if now - self._checked < self.watch_interval:
            return
        self._checked = now
        if (index_mtime(SHIPPED_DIR), index_mtime(self.data_dir)) != self._mtimes:
            self.reload()

    def preload(self) -> None:
        """Load every table now instead of on first use (used by the server at start-up)."""
        for entry in self._snapshot.entries:
            entry.load()

    def catalog(self, kind: str | None = None) -> list[Entry]:
        self.maybe_reload()
        return [e for e in self._snapshot.entries if kind is None or e.kind == kind]

    # ------------------------------------------------------------- code systems
    def code_system(
        self, system: str, day: date | None = None, version: str | None = None
    ) -> tuple[CodeSystemVersion, list[str]]:
        self.maybe_reload()
        url = systems.canonical(system)
        entries = self._snapshot.of("codesystem", url)
        if not entries:
            raise TerminologyError("unknown-system", f"Code system {system} is not loaded")
        if version is not None:
            for e in entries:
                if e.meta.version == version:
                    return e.load(), []
            known = ", ".join(sorted(e.meta.version for e in entries))
            raise TerminologyError(
                "unknown-version", f"{url} has no version {version} (loaded: {known})"
            )
        entry, warnings = _pick(entries, day)
        if entry is None:
            first = min(entries, key=lambda e: e.meta.effective_from)
            raise TerminologyError(
                "not-effective",
                f"No {first.meta.name} version loaded is in force on {day}; the earliest "
                f"loaded starts {first.meta.effective_from.isoformat()}",
            )
        return entry.load(), warnings

    def _other_versions(self, url: str, code: str, current: Meta) -> list[Meta]:
        found = []
        for e in self._snapshot.of("codesystem", url):
            if e.meta != current and code in e.load().concepts:
                found.append(e.meta)
        return sorted(found, key=lambda m: m.effective_from)

    def _not_found(self, url: str, code: str, cs: CodeSystemVersion, day: date | None) -> str:
        """Explain an absent code: never existed, not yet effective, or deleted."""
        others = self._other_versions(url, code, cs.meta)
        name = cs.meta.title or cs.meta.name
        if not others:
            hint = ""
            if url == systems.ICD10CM:
                prefix = [c for c in (code[:5], code[:3]) if c in cs.concepts]
                if prefix:
                    hint = f"; did you mean a code under {prefix[0]}?"
            extra = " (this shipped table is a subset)" if cs.content == "fragment" else ""
            return f"{code} is not a code in {name}{extra}{hint}"
        when = day.isoformat() if day else "that date"
        if cs.content == "fragment":
            m = others[-1]
            return (
                f"{code} is not in the shipped {name} subset in force on {when}; it is a code "
                f"of {m.title or m.version} ({m.period()}). Load the full release for that date"
            )
        later = [m for m in others if m.effective_from > cs.meta.effective_from]
        if later:
            m = later[0]
            return (
                f"{code} is not valid on {when}: it was added in {m.title or m.version}, "
                f"effective {m.effective_from.isoformat()}"
            )
        m = others[-1]
        end = m.effective_to.isoformat() if m.effective_to else "its replacement"
        return (
            f"{code} is not valid on {when}: it was deleted after {m.title or m.version} "
            f"(last valid {end}); code to the current {name}"
        )

    def lookup(
        self, system: str, code: str, day: date | None = None, version: str | None = None
    ) -> LookupResult:
        """The concept with its hierarchy and notes; raises ``TerminologyError``."""
        url = systems.canonical(system)
        cs, warnings = self.code_system(url, day, version)
        code = systems.normalize_code(url, code)
        concept = cs.concepts.get(code)
        if concept is None:
            kind = "unknown-code"
            message = self._not_found(url, code, cs, day)
            if "is not valid on" in message:
                kind = "not-effective"
            raise TerminologyError(kind, message)
        ancestors = cs.ancestors(code)
        notes = [
            Note(kind, text, at)
            for at in [code, *ancestors]
            for kind, texts in cs.notes.get(at, {}).items()
            for text in texts
        ]
        root = cs.concepts.get(ancestors[-1]) if ancestors else None
        classification = {
            k: v
            for k, v in ((root.properties or {}) if root else {}).items()
            if k in ("chapter", "block")
        }
        return LookupResult(
            classification=classification,
            system=url,
            meta=cs.meta,
            concept=concept,
            ancestors=[(a, cs.concepts[a].display) for a in ancestors if a in cs.concepts],
            children=[(c, cs.concepts[c].display) for c in concept.children],
            notes=notes,
            warnings=warnings,
        )

    def validate_code(
        self,
        system: str,
        code: str,
        day: date | None = None,
        version: str | None = None,
        display: str | None = None,
        age: float | None = None,
        sex: str | None = None,
    ) -> ValidationResult:
        """Is ``code`` usable on a claim for a service on ``day``? Never raises for codes."""
        url = systems.canonical(system)
        try:
            found = self.lookup(url, code, day, version)
        except TerminologyError as err:
            reason = err.kind if err.kind != "unknown-version" else "unknown-system"
            return ValidationResult(False, reason, err.message, url, code)
        concept = found.concept
        ver = found.meta.version
        name = found.meta.title or found.meta.name
        if concept.valid_from and day and day < concept.valid_from:
            return ValidationResult(
                False,
                "not-effective",
                f"{concept.code} is not valid on {day}: effective {concept.valid_from}",
                url,
                concept.code,
                concept.display,
                ver,
            )
        if concept.valid_to and day and day > concept.valid_to:
            return ValidationResult(
                False,
                "not-effective",
                f"{concept.code} is not valid on {day}: terminated {concept.valid_to}",
                url,
                concept.code,
                concept.display,
                ver,
            )
        if not concept.billable:
            under = [c for c, _ in found.children[:3]]
            more = ", ..." if len(found.children) > 3 else ""
            return ValidationResult(
                False,
                "not-billable",
                f"{concept.code} ({concept.display}) is a header in {name}, not a billable "
                f"code; code to the highest specificity, e.g. {', '.join(under)}{more}",
                url,
                concept.code,
                concept.display,
                ver,
                found.warnings,
            )
        warnings = list(found.warnings)
        if display and display.strip().lower() != concept.display.lower():
            warnings.append(f"Display {display!r} differs from {concept.display!r}")
        restriction = concept.properties or {}
        for reason in conflicts(restriction, age, sex):
            warnings.append(f"{concept.code}: {reason}")
        if concept.manifestation:
            warnings.append(
                f"{concept.code} is a manifestation code: it cannot be the principal "
                "diagnosis; code the underlying condition first"
            )
        return ValidationResult(
            True,
            "valid",
            f"{concept.code} is valid in {name} ({found.meta.period()})",
            url,
            concept.code,
            concept.display,
            ver,
            warnings,
        )

    # ---------------------------------------------------------------- value sets
    def expand(
        self,
        url: str,
        filter: str | None = None,
        day: date | None = None,
        count: int | None = None,
        offset: int = 0,
        exclude_abstract: bool = False,
        version: str | None = None,
    ) -> Expansion:
        """Expand an implicit value set: ``<system>?fhir_vs`` (all codes) or
        ``<system>?fhir_vs=isa/<code>`` (the code and its descendants)."""
        if "?fhir_vs" not in url:
            raise TerminologyError(
                "unknown-valueset",
                f"Value set {url} is not known; use <system>?fhir_vs or ?fhir_vs=isa/<code>",
            )
        system, _, query = url.partition("?fhir_vs")
        cs, _ = self.code_system(system, day, version)
        canonical = systems.canonical(system)
        codes: Iterable[str]
        if query.startswith("=isa/"):
            root = systems.normalize_code(canonical, query[len("=isa/") :])
            if root not in cs.concepts:
                raise TerminologyError("unknown-code", self._not_found(canonical, root, cs, day))
            codes = cs.descendants(root)
        elif query in ("", "="):
            codes = cs.concepts.keys()
        else:
            raise TerminologyError("unknown-valueset", f"Unsupported implicit value set {url}")
        words = filter.lower().split() if filter else []
        if words:
            haystack = self._haystack(cs)
            if len(words) == 1:
                word = words[0]
                codes = [c for c in codes if word in haystack[c]]
            else:
                codes = [c for c in codes if all(w in haystack[c] for w in words)]
        stop = None if count is None else offset + count
        items: list[ExpansionItem] = []
        total = 0
        for code in codes:
            concept = cs.concepts[code]
            if exclude_abstract and not concept.billable:
                continue
            # Count every match, but build items only for the requested page.
            if total >= offset and (stop is None or total < stop):
                items.append(
                    ExpansionItem(
                        canonical, cs.meta.version, code, concept.display, not concept.billable
                    )
                )
            total += 1
        return Expansion(url, total, offset, items, [(canonical, cs.meta.version)])

    def _haystack(self, cs: CodeSystemVersion) -> dict[str, str]:
        """Lower-cased "code display" per code, built once per version for ``filter``."""
        key = (cs.meta.url, cs.meta.version, cs.meta.effective_from)
        found = self._haystacks.get(key)
        if found is None:
            found = {c.code: f"{c.code.lower()} {c.display.lower()}" for c in cs.concepts.values()}
            self._haystacks[key] = found
        return found

    def validate_in_valueset(
        self, url: str, system: str, code: str, day: date | None = None
    ) -> ValidationResult:
        result = self.validate_code(system, code, day)
        if not result.valid or "?fhir_vs" not in url:
            return result
        base, _, query = url.partition("?fhir_vs")
        if systems.canonical(base) != result.system:
            return ValidationResult(
                False, "not-in-valueset", f"{code} is not from {base}", result.system, code
            )
        if query.startswith("=isa/"):
            root = systems.normalize_code(result.system, query[len("=isa/") :])
            cs, _ = self.code_system(result.system, day)
            if result.code != root and root not in cs.ancestors(result.code):
                return ValidationResult(
                    False,
                    "not-in-valueset",
                    f"{result.code} is valid but not in {url} (it is not under {root})",
                    result.system,
                    result.code,
                    result.display,
                    result.version,
                )
        return result

    # -------------------------------------------------------------- concept maps
    def concept_maps(self, day: date | None = None) -> list[ConceptMapVersion]:
        self.maybe_reload()
        by_url: dict[str, list[Entry]] = {}
        for e in self._snapshot.of("conceptmap"):
            by_url.setdefault(e.meta.url, []).append(e)
        chosen = []
        for entries in by_url.values():
            entry, _ = _pick(entries, day)
            if entry is not None:
                chosen.append(entry.load())
        return chosen

    def translate(
        self,
        source_system: str,
        code: str,
        target_system: str | None = None,
        day: date | None = None,
        age: float | None = None,
        sex: str | None = None,
        map_url: str | None = None,
    ) -> list[TranslateMatch]:
        """All candidate targets for ``code``, in map-group and priority order.

        Within a map group the rules are tried in priority order as in the NLM map: with
        the patient's age and sex known, the first target whose rule holds is the group's
        answer; with them unknown, every candidate is returned and marked unevaluated.
        """
        src = systems.canonical(source_system)
        tgt = systems.canonical(target_system) if target_system else None
        matches: list[TranslateMatch] = []
        for cm in self.concept_maps(day):
            if cm.source_system != src or (tgt and cm.target_system != tgt):
                continue
            if map_url and cm.meta.url != map_url:
                continue
            targets = cm.entries.get(code.strip())
            if not targets:
                continue
            groups: dict[int, list[MapTarget]] = {}
            for t in targets:
                groups.setdefault(t.map_group, []).append(t)
            for group in groups.values():
                undecided = False  # an earlier rule in the group could not be evaluated
                for t in group:
                    holds = _rule_holds(t, age, sex)
                    if undecided and t.rule.upper().startswith("OTHERWISE"):
                        holds = None  # applies only if the undecided rules above fail
                    if holds is None:
                        undecided = True
                    if holds is False:
                        continue
                    matches.append(
                        TranslateMatch(
                            cm.target_system,
                            t.code,
                            t.display,
                            t.equivalence,
                            t.map_group,
                            t.map_priority,
                            t.rule,
                            t.advice,
                            cm.meta.url,
                            cm.meta.version,
                            holds is True,
                        )
                    )
                    if holds is True:
                        break  # the first rule that holds answers this group
        return matches

    # ---------------------------------------------------------- edits and fees
    def _table(self, kind: str, day: date | None) -> tuple[Entry | None, list[str]]:
        """The billing table of ``kind`` in force on ``day``; when none is loaded for that
        day, the nearest release answers, with a warning that says so."""
        self.maybe_reload()
        entries = self._snapshot.of(kind)
        entry, warnings = _pick(entries, day)
        if entry is None and entries and day is not None:
            entry = min(entries, key=lambda e: e.meta.effective_from)
            warnings = [
                f"No {entry.meta.name} release loaded for {day.isoformat()}; answered from "
                f"{entry.meta.version} ({entry.meta.period()}). Load the release for that date."
            ]
        if entry is not None and day is not None and not warnings and not entry.meta.official(day):
            m = entry.meta
            end = m.official_to.isoformat() if m.official_to else "until superseded"
            warnings = [
                f"{m.name} {m.version} is CMS's release for {m.official_from} to {end}; it "
                f"answers for {day.isoformat()} because no release for that date is loaded"
            ]
        return entry, warnings

    def table_meta(self, kind: str, day: date | None) -> tuple[Meta | None, list[str]]:
        """Which release of a billing table (mpfs-rvu, mue, aoc, ...) answers for ``day``."""
        entry, warnings = self._table(kind, day)
        return (entry.meta if entry else None), warnings

    def ncci_edits(self, code1: str, code2: str, day: date | None = None) -> list[PtpEdit]:
        """NCCI PTP edits in force on ``day`` between the two codes, in either order."""
        entry, _ = self._table("ncci-ptp", day)
        if entry is None:
            return []
        index = _ptp_index(entry)
        day = day or date.today()
        found = index.get((code1, code2), []) + index.get((code2, code1), [])
        return [e for e in found if e.in_force(day)]

    def mue(self, code: str, day: date | None = None) -> Mue | None:
        entry, _ = self._table("mue", day)
        if entry is None:
            return None
        return _mue_index(entry).get(code)

    def addons(self, code: str, day: date | None = None) -> list[AddOn]:
        """The AOC edits in force on ``day`` that make ``code`` an add-on code (empty: it
        is not an add-on code)."""
        entry, _ = self._table("aoc", day)
        if entry is None:
            return []
        when = day or date.today()
        return [e for e in _aoc_index(entry).get(code, []) if e.in_force(when)]

    def rvu(self, code: str, day: date | None = None, modifier: str = "") -> Rvu | None:
        """The PFS relative value row of ``code`` (and modifier 26/TC/53) for ``day``."""
        entry, _ = self._table("mpfs-rvu", day)
        if entry is None:
            return None
        return _rvu_index(entry).get((code, modifier))

    def gpci(self, locality: str, day: date | None = None) -> Gpci | None:
        entry, _ = self._table("mpfs-gpci", day)
        return _gpci_index(entry).get(locality) if entry is not None else None

    def localities(self, day: date | None = None) -> list[Locality]:
        entry, _ = self._table("mpfs-locality", day)
        rows: list[Locality] = entry.load() if entry is not None else []
        return rows

    def resolve_locality(self, text: str, day: date | None = None) -> str:
        """A PFS locality id (``MAC-NN``) from what a user configures: the id itself, a state
        abbreviation and locality number (``NY-01``), or a state and county
        (``NEW YORK/NEW YORK``, ``MO/Jackson``: the locality whose counties name it, else the
        state's rest-of-state or statewide locality). Raises ``TerminologyError``."""
        value = text.strip().upper()
        entry, _ = self._table("mpfs-gpci", day)
        gpcis: dict[str, Gpci] = _gpci_index(entry) if entry is not None else {}
        if value in gpcis or value == "00000-00":
            return value
        sep = "/" if "/" in value else ("," if "," in value else "-")
        state, _, rest = value.partition(sep)
        state, rest = state.strip(), rest.strip()
        if rest.isdigit():
            for g in gpcis.values():
                if g.state == state and g.locality.endswith(f"-{rest.zfill(2)}"):
                    return g.locality
        rows = self.localities(day)
        in_state = [r for r in rows if r.state.upper() == state] or [
            r for r in rows if _state_abbrev(r, gpcis) == state
        ]
        if not in_state:
            raise TerminologyError("unknown-locality", f"No PFS locality for {text!r}")
        if rest:
            for r in in_state:
                if re.search(rf"\b{re.escape(rest)}\b", r.counties.upper()):
                    return r.locality
        for r in in_state:
            if any(w in r.counties.upper() for w in ("ALL COUNTIES", "ALL OTHER", "REST OF")):
                return r.locality
        for r in in_state:
            if "REST OF" in r.area.upper() or "STATEWIDE" in r.area.upper():
                return r.locality
        raise TerminologyError(
            "unknown-locality",
            f"{text!r}: name a county of {state} or a locality number (26LOCCO)",
        )

    def fee(
        self,
        code: str,
        day: date | None = None,
        locality: str = "00000-00",
        facility: bool = False,
        modifier: str = "",
    ) -> FeeResult | None:
        """Medicare physician fee: (work*GPCIw + PE*GPCIpe + MP*GPCImp) * conversion factor.

        The national locality ``00000-00`` has every GPCI at 1.0. The work GPCI with the 1.0
        floor is used through the day the GPCI file says the floor was extended to."""
        rvu_entry, _ = self._table("mpfs-rvu", day)
        gpci_entry, _ = self._table("mpfs-gpci", day)
        if rvu_entry is None or gpci_entry is None:
            return None
        rvu = _rvu_index(rvu_entry).get((code, modifier))
        gpcis: dict[str, Gpci] = _gpci_index(gpci_entry)
        gpci = gpcis.get(locality) or (
            Gpci("00000-00", "National (all GPCIs 1.0)", 1.0, 1.0, 1.0)
            if locality == "00000-00"
            else None
        )
        if rvu is None or gpci is None:
            return None
        cf = rvu.conversion_factor or float(rvu_entry.extra.get("conversion_factor") or 0.0)
        # A code with "NA" non-facility PE is not paid in an office: the facility PE applies.
        pe = rvu.pe_facility if facility or rvu.na_nonfacility else rvu.pe_nonfacility
        work_gpci = gpci.work_on(day)
        amount = (rvu.work * work_gpci + pe * gpci.pe + rvu.malpractice * gpci.malpractice) * cf
        return FeeResult(
            code,
            modifier,
            round(amount, 2),
            facility,
            locality,
            rvu,
            gpci,
            cf,
            rvu_entry.meta.version,
            gpci_entry.meta.version,
        )


def _rule_holds(t: MapTarget, age: float | None, sex: str | None) -> bool | None:
    """True/False when the rule can be decided from the given age and sex, else None."""
    if t.sex is None and t.age_min is None and t.age_max is None:
        return True
    verdict = True
    if t.sex is not None:
        if not sex or sex.lower() not in ("male", "female"):
            return None
        verdict = verdict and sex.lower() == t.sex
    if t.age_min is not None or t.age_max is not None:
        if age is None:
            return None
        if t.age_min is not None and age < t.age_min:
            verdict = False
        if t.age_max is not None and age >= t.age_max:
            verdict = False
    return verdict


# Indexes built once per loaded table and cached on the entry's ``extra`` dict.
def _cached(entry: Entry, key: str, build: Any) -> Any:
    value = entry.extra.get(key)
    if value is None:
        value = build(entry.load())
        entry.extra[key] = value
    return value


def _ptp_index(entry: Entry) -> dict[tuple[str, str], list[PtpEdit]]:
    def build(edits: list[PtpEdit]) -> dict[tuple[str, str], list[PtpEdit]]:
        out: dict[tuple[str, str], list[PtpEdit]] = {}
        for e in edits:
            out.setdefault((e.column1, e.column2), []).append(e)
        return out

    result: dict[tuple[str, str], list[PtpEdit]] = _cached(entry, "_ptp", build)
    return result


def _mue_index(entry: Entry) -> dict[str, Mue]:
    result: dict[str, Mue] = _cached(entry, "_mue", lambda rows: {m.code: m for m in rows})
    return result


def _rvu_index(entry: Entry) -> dict[tuple[str, str], Rvu]:
    result: dict[tuple[str, str], Rvu] = _cached(
        entry, "_rvu", lambda rows: {(r.code, r.modifier): r for r in rows}
    )
    return result


def _aoc_index(entry: Entry) -> dict[str, list[AddOn]]:
    def build(rows: list[AddOn]) -> dict[str, list[AddOn]]:
        out: dict[str, list[AddOn]] = {}
        for e in rows:
            out.setdefault(e.addon, []).append(e)
        return out

    result: dict[str, list[AddOn]] = _cached(entry, "_aoc", build)
    return result


def _state_abbrev(row: Locality, gpcis: dict[str, Gpci]) -> str:
    g = gpcis.get(row.locality)
    return g.state.upper() if g else ""


def _gpci_index(entry: Entry) -> dict[str, Gpci]:
    result: dict[str, Gpci] = _cached(entry, "_gpci", lambda rows: {g.locality: g for g in rows})
    return result


_default: TerminologyService | None = None
_default_lock = threading.Lock()


def get_service() -> TerminologyService:
    """The process-wide service (lazily created); the API router depends on it."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = TerminologyService()
    return _default


def set_service(service: TerminologyService | None) -> None:
    global _default
    _default = service
