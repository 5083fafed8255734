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
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from terminology import systems
from terminology.billing_tables import BillingTables
from terminology.catalog import Entry, ensure_caches, index_mtime, pick, read_index
from terminology.disk_tables import ConceptTable
from terminology.errors import TerminologyError
from terminology.icd10cm_edits import conflicts
from terminology.model import (
    CodeSystemVersion,
    Concept,
    ConceptMapVersion,
    MapTarget,
    Meta,
)
from terminology.store import SHIPPED_DIR

DEFAULT_DATA_DIR = Path(os.environ.get("BILLABLE_TERMINOLOGY_DIR", "data/terminology"))


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


@dataclass(frozen=True, slots=True)
class _Snapshot:
    entries: tuple[Entry, ...]
    # (kind, url) -> entries, filled on first use: every look-up asks for its system's.
    _by: dict[tuple[str, str | None], list[Entry]] = field(default_factory=dict)

    def of(self, kind: str, url: str | None = None) -> list[Entry]:
        found = self._by.get((kind, url))
        if found is None:
            found = [
                e for e in self.entries if e.kind == kind and (url is None or e.meta.url == url)
            ]
            self._by[(kind, url)] = found
        return list(found)


class TerminologyService(BillingTables):
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
        """Open every table now instead of on first use (used by the server at start-up):
        the missing cache files are built (large ones in one child process), then each
        table is opened; nothing is parsed into memory."""
        ensure_caches(list(self._snapshot.entries))
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
        entry, warnings = pick(entries, day)
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
        pairs: Iterable[tuple[str, Concept]]
        if isinstance(cs.concepts, ConceptTable):
            # On disk: the filter is one scan inside SQLite, and a whole-system expansion
            # streams the rows instead of looking every code up.
            matched = cs.concepts.matching(words) if words else None
            if query.startswith("=isa/"):
                pairs = ((c, cs.concepts[c]) for c in codes if matched is None or c in matched)
            else:
                pairs = (p for p in cs.concepts.items() if matched is None or p[0] in matched)
        else:
            if words:
                haystack = self._haystack(cs)
                codes = [c for c in codes if all(w in haystack[c] for w in words)]
            pairs = ((c, cs.concepts[c]) for c in codes)
        stop = None if count is None else offset + count
        items: list[ExpansionItem] = []
        total = 0
        for code, concept in pairs:
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
            entry, _ = pick(entries, day)
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
