"""The coding engine: one Encounter and its Conditions and Procedures become a Claim.

Pure and in-process (no I/O): ``code_encounter(source, terminology)`` returns the Claim
(without id) and the problems found, each an OperationOutcome issue a coder can act on.
The rules (docs/coding.md) follow the ICD-10-CM Official Guidelines for diagnoses, the
CPT E/M guidelines for visit levels, and the CMS NCCI/MUE/LCD model for edits; the
tables they use live in ``mappings/data/`` and in the terminology module.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from mappings.coding.claim_resource import build_claim
from mappings.coding.diagnoses import DiagnosisCoder
from mappings.coding.dx_rules import dx_rules
from mappings.coding.ed_mdm import ed_mdm_table
from mappings.coding.em import VisitCoder
from mappings.coding.facility import facility_rules, professional_component
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
    text as _text,
)
from mappings.coding.immunizations import immunization_lines, vaccine_table
from mappings.coding.institutional import accommodation, revenue_center
from mappings.coding.line_codes import check_line_code
from mappings.coding.model import (
    CodingConfig,
    CodingResult,
    Problem,
    SourceData,
)
from mappings.coding.overrides import CoderDecisions
from mappings.coding.payers import payer_tables
from mappings.coding.procedures import procedure_lines
from mappings.coding.tables import RuleTables, rule_tables
from mappings.edits.scrub import scrub_lines
from mappings.pricing.professional import price_lines
from terminology import systems
from terminology.service import TerminologyError, TerminologyService

SCT = systems.SNOMED


def _age_years(birth: date, day: date) -> float:
    years = day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))
    anniversary = _safe_replace(birth, birth.year + years)
    fraction = (day - anniversary).days / 366.0
    return years + max(0.0, min(fraction, 0.999))


def _safe_replace(d: date, year: int) -> date:
    try:
        return d.replace(year=year)
    except ValueError:  # 29 February
        return d.replace(year=year, day=28)


class _Coder:
    def __init__(
        self,
        src: SourceData,
        terminology: TerminologyService,
        tables: RuleTables,
        config: CodingConfig,
    ) -> None:
        self.src = src
        self.t = terminology
        self.tables = tables
        self.config = config
        self.problems: list[Problem] = []
        self.versions: set[tuple[str, str]] = set()
        enc = src.encounter
        self.period = enc.get("period") or {}
        self.start = _instant(self.period.get("start"))
        self.dos = _day(self.period.get("start")) or _day(self.period.get("end")) or date.today()
        self.age: float | None = None
        self.sex: str | None = None
        patient = src.patient or {}
        birth = _day(patient.get("birthDate"))
        if birth is not None:
            self.age = _age_years(birth, self.dos)
        if patient.get("gender") in ("male", "female"):
            self.sex = patient["gender"]
        cls = (enc.get("class") or {}).get("code") or ""
        self.encounter_class = cls
        self.setting = tables.settings.get(cls)
        self.claim_type = self.setting.claim_type if self.setting else "professional"
        self.institutional = self.claim_type == "institutional"
        # UB-04 bill kind (CARIN's C4BBInstitutionalClaimSubType): an inpatient stay, or a
        # hospital outpatient visit (observation, day surgery).
        self.inpatient = self.institutional and (
            self.setting is not None and self.setting.setting == "inpatient"
        )
        self.pos = self.setting.pos if self.setting else "11"
        self.facility = self.setting.facility if self.setting else False
        self.kinds = self._encounter_kinds()

    def problem(self, severity: str, code: str, message: str, location: str) -> None:
        self.problems.append(Problem(severity, code, message, location))

    # ------------------------------------------------------------------ encounter
    def _encounter_kinds(self) -> set[str]:
        kinds: set[str] = set()
        for concept in self.src.encounter.get("type") or []:
            found = False
            for coding in _codings(concept):
                rule = self.tables.type_codes.get(str(coding["code"]))
                if rule:
                    kinds.add(rule[0])
                    found = True
                    if rule[1]:
                        self.pos = rule[1]
            if not found:
                text = _text(concept)
                for word, kind, pos in self.tables.type_words:
                    if word in text:
                        kinds.add(kind)
                        if pos:
                            self.pos = pos
                        break
        return kinds

    def minutes(self) -> float | None:
        length = self.src.encounter.get("length")
        if isinstance(length, dict) and isinstance(length.get("value"), int | float):
            unit = (length.get("code") or length.get("unit") or "min").lower()
            factor = {"h": 60.0, "hour": 60.0, "hours": 60.0, "s": 1 / 60, "d": 1440.0}
            return float(length["value"]) * factor.get(unit, 1.0)
        end = _instant(self.period.get("end"))
        if self.start is None or end is None:
            return None
        return (end - self.start).total_seconds() / 60.0

    def translate(self, code: str, target: str | None) -> list[Any]:
        matches = self.t.translate(SCT, code, target, self.dos, age=self.age, sex=self.sex)
        if not matches:
            # No map version in force on the date of service: the newest map, then the
            # target code is still validated against the code set in force on that date.
            matches = self.t.translate(SCT, code, target, None, age=self.age, sex=self.sex)
        for m in matches:
            self.versions.add((m.map_url, m.map_version))
        return matches

    # --------------------------------------------------------------------- run
    def run(self) -> CodingResult:
        patient = self.src.patient
        if patient is None:
            self.problem(
                "error",
                "missing-patient-data",
                "The Encounter's subject is not a known Patient",
                "Claim.patient",
            )
        else:
            for element, what in (("name", "name"), ("birthDate", "birth date"), ("gender", "sex")):
                if not patient.get(element):
                    self.problem(
                        "error",
                        "missing-patient-data",
                        f"Payers require the patient's {what}: Patient.{element} is missing",
                        "Claim.patient",
                    )
        visit = VisitCoder(self)
        vaccines = (
            [] if self.institutional else immunization_lines(self, visit.payer()[1].vaccine_admin)
        )
        added = [("Z23", vaccines[0].sources[0])] if vaccines else []
        dx_coder = DiagnosisCoder(self)
        dxs, by_condition = dx_coder.diagnoses(added)
        decisions = CoderDecisions.of(self)  # a coder's overrides, reapplied (overrides.py)
        dxs = decisions.diagnoses(dxs, by_condition, dx_coder.check_icd10cm)
        proc_lines, pcs = procedure_lines(self, by_condition)
        proc_lines += vaccines
        ordered = list(proc_lines)  # tests ordered and reviewed count for ED MDM data
        if self.facility and not self.institutional:
            # Facility setting (POS 19/21/22/23): the professional component only.
            proc_lines = professional_component(self, proc_lines)
        dxs = visit.screening_turned_diagnostic(dxs, proc_lines)
        dx_codes = [d.code for d in dxs]
        em = visit.em_lines(proc_lines)
        if self.setting is not None and self.setting.setting == "emergency":
            em = [visit.ed_line(len(dxs), len(proc_lines), dx_codes, ordered)]
        em = visit.visit_rules(em, proc_lines, dx_codes)
        lines = em + proc_lines
        if self.inpatient:
            lines.insert(0, accommodation(self))
        lines = decisions.lines(lines)
        for i, ln in enumerate(lines):
            if ln.revenue is None:
                check_line_code(self, ln, f"Claim.item[{i}].productOrService")
                if self.institutional:
                    revenue_center(self, ln, i)
        scrub_lines(self, lines, dx_codes)
        kept = [ln for ln in lines if not ln.removed]
        price_lines(self, kept)
        claim = build_claim(self, dxs, kept, pcs)
        decisions.finish(claim)
        return self._result(claim)

    def _result(self, claim: dict[str, Any]) -> CodingResult:
        """The coding result of ``claim``: active when clean, with the versions used."""
        rule_versions = {
            **self.tables.versions(),
            **dx_rules().versions(),
            **payer_tables().versions,
            "immunizations.csv": vaccine_table()[1],
            "facility-professional.csv": facility_rules()[1],
            "ed-mdm.csv": ed_mdm_table()[3],
        }
        result = CodingResult(claim, self.problems, self.versions, rule_versions)
        claim["status"] = "active" if result.clean else "draft"
        return result


def code_encounter(
    source: SourceData,
    terminology: TerminologyService,
    tables: RuleTables | None = None,
    config: CodingConfig | None = None,
) -> CodingResult:
    """Code one Encounter: the Claim (no id yet), its problems and the versions used."""
    try:
        coder = _Coder(source, terminology, tables or rule_tables(), config or CodingConfig())
        return coder.run()
    except TerminologyError as exc:  # a table that cannot answer: the coder must look
        problem = Problem("error", "code-invalid", exc.message, "Claim")
        return CodingResult({"resourceType": "Claim", "status": "draft"}, [problem], set(), {})
