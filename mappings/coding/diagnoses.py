"""Diagnoses of one encounter: collected, mapped to ICD-10-CM, validated and ordered.

Sources (docs/coding.md): Conditions linked to the Encounter, ``Encounter.diagnosis`` and
``reasonReference``/``reasonCode``; the problem list only as a flagged fallback. Each
clinical code becomes ICD-10-CM as given or through the SNOMED CT map (every map group
gives its code), is validated for the date of service (a header, such as a code that
needs a 7th character, is an error and is shown as given, never replaced), and then the
ICD-10-CM conventions of ``dx_conventions`` make the list a coder would report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

from mappings.coding.dx_conventions import Conventions
from mappings.coding.dx_rules import dx_rules
from mappings.coding.fhir_values import LEFT, RIGHT
from mappings.coding.fhir_values import (
    codings as _codings,
)
from mappings.coding.fhir_values import (
    day as _day,
)
from mappings.coding.fhir_values import (
    instant as _instant,
)
from mappings.coding.fhir_values import (
    ref as _ref,
)
from mappings.coding.fhir_values import (
    status_code as _status_code,
)
from mappings.coding.fhir_values import (
    text as _text,
)
from mappings.coding.model import CodingConfig, SourceData
from mappings.coding.tables import RuleTables
from terminology import systems
from terminology.service import TerminologyError, TerminologyService

ICD10CM = systems.ICD10CM
SCT = systems.SNOMED
EXCLUDED_VERIFICATION = ("refuted", "entered-in-error")
UNCERTAIN_VERIFICATION = ("provisional", "differential")


@dataclass(slots=True)
class Dx:
    code: str
    display: str
    key: tuple[Any, ...]
    source: str  # "Condition/id" or "Encounter.reasonCode"
    manifestation: bool = False


class CoderLike(Protocol):
    """What the diagnosis coder needs from the engine (``engine._Coder``)."""

    src: SourceData
    t: TerminologyService
    tables: RuleTables
    config: CodingConfig
    dos: date
    start: datetime | None
    age: float | None
    sex: str | None
    kinds: set[str]
    institutional: bool
    versions: set[tuple[str, str]]
    problems: list[Any]

    def problem(self, severity: str, code: str, message: str, location: str) -> None: ...

    def translate(self, code: str, target: str | None) -> list[Any]: ...


def _side(condition: dict[str, Any]) -> str | None:
    """left/right from Condition.bodySite (SNOMED CT 7771000 / 24028007 or the words)."""
    sides = set()
    for site in condition.get("bodySite") or []:
        codes = {str(c["code"]) for c in _codings(site)}
        words = _text(site).split()
        if LEFT in codes or "left" in words:
            sides.add("left")
        if RIGHT in codes or "right" in words:
            sides.add("right")
    return sides.pop() if len(sides) == 1 else None


class DiagnosisCoder:
    def __init__(self, coder: CoderLike) -> None:
        self.c = coder
        self.t = coder.t
        self.dos = coder.dos
        self.age = coder.age
        self.kinds = coder.kinds
        self.conventions = Conventions(self, dx_rules())

    def problem(self, severity: str, code: str, message: str, location: str) -> None:
        self.c.problem(severity, code, message, location)

    # ---------------------------------------------------------------- collect
    def diagnoses(
        self, added: list[tuple[str, str]] | None = None
    ) -> tuple[list[Dx], dict[str, list[str]]]:
        """The claim's diagnoses; ``added`` are (code, source) pairs the services imply
        (Z23 for an immunization), reported after the encounter's own diagnoses."""
        c = self.c
        enc = c.src.encounter
        ranks: dict[str, tuple[int, int]] = {}  # Condition/id -> (bucket, rank)
        for entry in enc.get("diagnosis") or []:
            ref = (entry.get("condition") or {}).get("reference") or ""
            rank = entry.get("rank") if isinstance(entry.get("rank"), int) else 99
            use = {str(x["code"]) for x in _codings(entry.get("use"))}
            bucket = 0 if rank == 1 else (1 if use & {"billing", "DD"} else 3)
            ranks[ref] = min(ranks.get(ref, (9, 99)), (bucket, rank))
        for ref in enc.get("reasonReference") or []:
            key = (ref or {}).get("reference") or ""
            ranks[key] = min(ranks.get(key, (9, 99)), (2, 99))
        found: list[Dx] = []
        by_condition: dict[str, list[str]] = {}
        for i, cond in enumerate(c.src.conditions):
            ref = _ref(cond)
            if not self._included(cond, ref):
                continue
            bucket, rank = ranks.get(ref, (4, 99))
            recorded = cond.get("recordedDate") or cond.get("onsetDateTime") or ""
            codes = self._condition_codes(cond.get("code"), f"{ref}.code", _side(cond))
            by_condition[ref] = [x for x, _, _ in codes]
            for sub, (code, display, manifestation) in enumerate(codes):
                found.append(
                    Dx(code, display, (bucket, rank, recorded, i, sub), ref, manifestation)
                )
        for j, concept in enumerate(enc.get("reasonCode") or []):
            loc = f"{_ref(enc)}.reasonCode[{j}]"
            for sub, (code, display, manifestation) in enumerate(
                self._condition_codes(concept, loc, None)
            ):
                found.append(
                    Dx(code, display, (2, 99, "", j, sub), "Encounter.reasonCode", manifestation)
                )
        found.sort(key=lambda d: d.key)
        ordered = _unique(found)
        ordered = self.conventions.apply(ordered)
        for n, (code, source) in enumerate(added or []):
            if code not in {d.code for d in ordered}:
                checked = self.check_icd10cm(code, "Claim.diagnosis")
                if checked is not None:
                    ordered.append(Dx(checked[0], checked[1], (8, 99, "", n, 0), source))
        if "preventive" in c.kinds and not c.institutional:
            ordered = self._preventive_dx(ordered)
        if not ordered and c.src.problem_list:
            ordered = self.conventions.apply(self._problem_list_dx())
        if not ordered:
            self.problem(
                "error",
                "no-diagnosis",
                "No codable diagnosis: link a Condition to the Encounter (Condition.encounter"
                " or Encounter.diagnosis) or give Encounter.reasonCode",
                "Claim.diagnosis",
            )
        limit = c.config.max_professional_diagnoses
        if not c.institutional and len(ordered) > limit:
            rest = ", ".join(d.code for d in ordered[limit:])
            self.problem(
                "warning",
                "dx-over-limit",
                f"A professional claim carries at most {limit} diagnoses; not reported: {rest}",
                "Claim.diagnosis",
            )
            ordered = ordered[:limit]
        renamed = self.conventions.renamed
        if renamed:
            for ref, given in by_condition.items():
                by_condition[ref] = [renamed.get(x, x) for x in given]
        return ordered, by_condition

    def _included(self, cond: dict[str, Any], ref: str) -> bool:
        verification = _status_code(cond.get("verificationStatus"))
        if verification in EXCLUDED_VERIFICATION:
            self.problem(
                "information",
                "dx-excluded",
                f"{ref} is {verification}: not coded",
                f"{ref}.verificationStatus",
            )
            return False
        abated = _instant(cond.get("abatementDateTime"))
        abated_day = _day(cond.get("abatementDateTime"))
        if abated is None and abated_day is not None and abated_day < self.dos:
            abated = datetime(abated_day.year, abated_day.month, abated_day.day, tzinfo=UTC)
        if abated is not None and self.c.start is not None and abated < self.c.start:
            self.problem(
                "information",
                "dx-excluded",
                f"{ref} was resolved ({cond.get('abatementDateTime')}) before the encounter"
                " started: not coded",
                f"{ref}.abatement",
            )
            return False
        if verification in UNCERTAIN_VERIFICATION and not self.c.institutional:
            self.problem(
                "information",
                "dx-uncertain-excluded",
                f"{ref} is {verification}: uncertain diagnoses are not coded on outpatient"
                " and professional claims (ICD-10-CM Guidelines IV.H); code the signs or"
                " symptoms instead",
                f"{ref}.verificationStatus",
            )
            return False
        return True

    def _preventive_dx(self, ordered: list[Dx]) -> list[Dx]:
        """A routine examination is first-listed as Z00.- (Guidelines I.C.21.c.13)."""
        z = [d for d in ordered if d.code.startswith(("Z00", "Z01", "Z02"))]
        if z or self.age is None:
            return z + [d for d in ordered if d not in z]
        age = int(self.age)
        for lo, hi, _new, _old, normal, abnormal in self.c.tables.preventive:
            if lo <= age < hi:
                code = abnormal if ordered else normal
                checked = self.check_icd10cm(code, "Claim.diagnosis[0]")
                if checked is None:
                    break
                self.problem(
                    "information",
                    "dx-preventive-default",
                    f"Routine examination: {code} first-listed"
                    f" ({'with' if ordered else 'without'} abnormal findings)",
                    "Claim.diagnosis[0]",
                )
                return [Dx(checked[0], checked[1], (0,), "Encounter.type"), *ordered]
        return ordered

    def _problem_list_dx(self) -> list[Dx]:
        """Nothing links a diagnosis to the visit: the patient's active conditions, flagged."""
        found: list[Dx] = []
        for i, cond in enumerate(self.c.src.problem_list or []):
            clinical = _status_code(cond.get("clinicalStatus"))
            verification = _status_code(cond.get("verificationStatus"))
            if clinical not in (None, "active", "recurrence", "relapse"):
                continue
            if verification in (*EXCLUDED_VERIFICATION, *UNCERTAIN_VERIFICATION):
                continue
            onset = _day(cond.get("onsetDateTime") or cond.get("recordedDate"))
            if onset is None or onset > self.dos:
                continue
            ref = _ref(cond)
            saved = len(self.c.problems)
            codes = self._condition_codes(cond.get("code"), f"{ref}.code", _side(cond))
            del self.c.problems[saved:]  # candidates that cannot be coded are skipped
            for sub, (code, display, manifestation) in enumerate(codes):
                if code not in {d.code for d in found} and self.valid_icd(code):
                    key = (5, 99, cond.get("recordedDate") or "", i, sub)
                    found.append(Dx(code, display, key, ref, manifestation))
        found.sort(key=lambda d: d.key)
        if found:
            self.problem(
                "warning",
                "dx-from-problem-list",
                "No diagnosis is linked to this visit; the patient's active problem list was"
                f" used ({', '.join(d.code for d in found[:4])}): confirm with the provider",
                "Claim.diagnosis",
            )
        return found[: self.c.config.max_professional_diagnoses]

    # ---------------------------------------------------------------- mapping
    def valid_icd(self, code: str) -> bool:
        return self.t.validate_code(ICD10CM, code, self.dos, age=self.age, sex=self.c.sex).valid

    def _condition_codes(
        self, concept: Any, loc: str, side: str | None
    ) -> list[tuple[str, str, bool]]:
        """ICD-10-CM codes for one clinical code: as given, or mapped from SNOMED CT."""
        codings = _codings(concept)
        out: list[tuple[str, str, bool]] | None = None
        for c in codings:
            if systems.canonical(str(c.get("system") or "")) == ICD10CM:
                code = systems.normalize_code(ICD10CM, str(c["code"]))
                checked = self.check_icd10cm(code, loc)
                out = [checked] if checked else []
                break
        if out is None:
            for c in codings:
                if systems.canonical(str(c.get("system") or "")) == SCT:
                    out = self._map_snomed_dx(str(c["code"]), c.get("display") or "", loc)
                    break
        if out is None:
            shown = ", ".join(f"{c.get('system')}|{c.get('code')}" for c in codings)
            self.problem(
                "error",
                "unmapped",
                f"{shown or _text(concept) or 'An empty code'} is neither ICD-10-CM nor SNOMED"
                " CT: code it in ICD-10-CM",
                loc,
            )
            return []
        if side is not None:
            for code, display, _ in out:
                self._laterality(code, display, side, loc)
        return out

    def _map_snomed_dx(self, code: str, display: str, loc: str) -> list[tuple[str, str, bool]]:
        matches = self.c.translate(code, ICD10CM)
        extra = self.c.tables.supplement.get(code)
        if not matches and extra and extra[0] == "icd10cm":
            self.c.versions.add(("https://billable.dev/fhir/rules/snomed-supplement", "2026.1"))
            checked = self.check_icd10cm(extra[1], loc)
            return [checked] if checked else []
        if not matches:
            self.problem(
                "error",
                "unmapped",
                f"SNOMED CT {code} ({display}) has no ICD-10-CM map: code it by hand or add it"
                " to the map",
                loc,
            )
            return []
        out: list[tuple[str, str, bool]] = []
        groups: dict[int, list[Any]] = {}
        for m in matches:
            groups.setdefault(m.map_group, []).append(m)
        # Every map group gives its code (NLM map model): e.g. etiology + manifestation.
        for group in groups.values():
            chosen = group[0]
            if not chosen.rule_evaluated and len(group) > 1:
                self.problem(
                    "warning",
                    "map-rule-unevaluated",
                    f"SNOMED CT {code} maps by age or sex ({chosen.rule}), which the patient"
                    f" record lacks; {chosen.code} was chosen: check it",
                    loc,
                )
            if chosen.code is None:
                self.problem(
                    "information",
                    "not-reportable",
                    f"SNOMED CT {code} ({display}) has no ICD-10-CM code by map decision"
                    f"{': ' + chosen.advice if chosen.advice else ''}",
                    loc,
                )
                continue
            checked = self.check_icd10cm(chosen.code, loc)
            if checked:
                out.append(checked)
        return out

    def check_icd10cm(self, code: str, loc: str) -> tuple[str, str, bool] | None:
        result = self.t.validate_code(ICD10CM, code, self.dos, age=self.age, sex=self.c.sex)
        if result.version:
            self.c.versions.add((ICD10CM, result.version))
        if not result.valid:
            kind = {
                "not-billable": "code-not-billable",
                "not-effective": "code-not-effective",
            }.get(result.reason, "code-invalid")
            message = result.message
            if result.reason == "not-billable":
                message = self._header_advice(code, message)
            self.problem("error", kind, message, loc)
            return code, result.display or code, False
        manifestation = False
        for warning in result.warnings:
            if warning.startswith(f"{result.code}: "):
                self.problem(
                    "error", "age-sex-conflict", f"{warning} (patient: {self._who()})", loc
                )
            elif "manifestation" in warning:
                manifestation = True
        return result.code, result.display or code, manifestation

    def _header_advice(self, code: str, message: str) -> str:
        """Say what the header lacks: a 7th character, laterality, or more specificity."""
        try:
            found = self.t.lookup(ICD10CM, code, self.dos)
        except TerminologyError:
            return message
        children = [c for c, _ in found.children]
        bare = code.replace(".", "")
        if children and all(len(c.replace(".", "")) == 7 for c in children) and len(bare) <= 6:
            chars = sorted({c[-1] for c in children})
            return (
                f"{message}. {code} requires a 7th character ({', '.join(chars)}; e.g. A initial"
                " encounter, D subsequent, S sequela: Guidelines I.A.6)"
            )
        titles = " ".join(d.lower() for _, d in found.children)
        if "right" in titles and "left" in titles:
            return f"{message}. {code} requires laterality (right, left, bilateral; I.B.13)"
        return message

    def _laterality(self, code: str, display: str, side: str, loc: str) -> None:
        """A code with an unspecified side when the Condition's bodySite gives the side."""
        if "unspecified" not in display.lower():
            return
        try:
            found = self.t.lookup(ICD10CM, code, self.dos)
        except TerminologyError:
            return
        parent = found.ancestors[0][0] if found.ancestors else None
        if parent is None:
            return
        siblings = self.t.lookup(ICD10CM, parent, self.dos).children
        wanted = [c for c, d in siblings if side in d.lower().split() or f"{side}," in d.lower()]
        if wanted:
            self.problem(
                "warning",
                "dx-laterality",
                f"{code} ({display}) has an unspecified side but the condition's body site is"
                f" {side}: code the {side} side ({', '.join(wanted[:3])}; I.B.13 laterality)",
                loc,
            )

    def _who(self) -> str:
        age = f"{int(self.age)} years" if self.age is not None else "age unknown"
        return f"{self.c.sex or 'sex unknown'}, {age} on {self.dos}"


def _unique(found: list[Dx]) -> list[Dx]:
    ordered: list[Dx] = []
    seen: set[str] = set()
    for dx in found:
        if dx.code not in seen:
            seen.add(dx.code)
            ordered.append(dx)
    return ordered
