"""The coding engine: one Encounter and its Conditions and Procedures become a Claim.

Pure and in-process (no I/O): ``code_encounter(source, terminology)`` returns the Claim
(without id) and the problems found, each an OperationOutcome issue a coder can act on.
The rules (docs/coding.md) follow the ICD-10-CM Official Guidelines for diagnoses, the
CPT E/M guidelines for visit levels, and the CMS NCCI/MUE/LCD model for edits; the
tables they use live in ``mappings/data/`` and in the terminology module.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from mappings.coding.diagnoses import DiagnosisCoder, Dx
from mappings.coding.dx_conventions import pointer_order
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
    ref as _ref,
)
from mappings.coding.fhir_values import (
    text as _text,
)
from mappings.coding.immunizations import immunization_lines, vaccine_table
from mappings.coding.institutional import REVENUE, accommodation, revenue_center, sub_type
from mappings.coding.line_codes import check_line_code
from mappings.coding.lines import Line
from mappings.coding.model import (
    CodingConfig,
    CodingResult,
    Problem,
    SourceData,
)
from mappings.coding.payers import payer_tables
from mappings.coding.procedures import procedure_lines
from mappings.coding.tables import RuleTables, rule_tables
from mappings.edits.scrub import scrub_lines
from mappings.pricing.professional import price_lines
from terminology import systems
from terminology.service import TerminologyError, TerminologyService

ICD10CM = systems.ICD10CM
CPT = systems.CPT
HCPCS = systems.HCPCS
SCT = systems.SNOMED
POS = systems.POS
SELF_PAY_SYSTEM = "http://terminology.hl7.org/CodeSystem/coverage-selfpay"


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
        dxs, by_condition = DiagnosisCoder(self).diagnoses(added)
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
        for i, ln in enumerate(lines):
            if ln.revenue is None:
                check_line_code(self, ln, f"Claim.item[{i}].productOrService")
                if self.institutional:
                    revenue_center(self, ln, i)
        scrub_lines(self, lines, dx_codes)
        kept = [ln for ln in lines if not ln.removed]
        price_lines(self, kept)
        return self._build(dxs, kept, pcs)

    def pointers(self, line: Line, dx_codes: list[str]) -> list[int]:
        preferred = [c for c in line.dx if c in dx_codes]
        rule = self.tables.necessity.get(line.code)
        if rule:
            preferred += [c for c in dx_codes if c.startswith(rule[1])]
        # Never a code that cannot be first-listed first; on a problem E/M never the
        # routine-exam Z00/Z01 first (the problem justifies the line); claim order otherwise.
        problem_em = (line.em or line.addon) and not line.preventive
        preferred += pointer_order(self, dx_codes, problem_em=problem_em)
        out: list[int] = []
        for code in preferred:
            seq = dx_codes.index(code) + 1
            if seq not in out:
                out.append(seq)
            if len(out) == self.config.max_pointers:
                break
        return out

    def _build(self, dxs: list[Dx], lines: list[Line], pcs: list[dict[str, Any]]) -> CodingResult:
        enc = self.src.encounter
        cfg = self.config
        money = {"currency": cfg.currency}
        dx_codes = [d.code for d in dxs]
        items = []
        total = 0.0
        for i, ln in enumerate(lines):
            unit = ln.unit_price if ln.unit_price is not None else 0.0
            net = round(unit * ln.quantity, 2)
            total += net
            coding: dict[str, Any] = {"system": ln.system, "code": ln.code}
            if ln.display:
                coding["display"] = ln.display
            item: dict[str, Any] = {"sequence": i + 1}
            if 1 in self._care_team_seq():
                item["careTeamSequence"] = [1]
            pointers = self.pointers(ln, dx_codes) if dx_codes else []
            if pointers:
                item["diagnosisSequence"] = pointers
            if ln.revenue:
                item["revenue"] = {"coding": [{"system": REVENUE, "code": ln.revenue}]}
            item["productOrService"] = {"coding": [coding]}
            if ln.modifiers:
                # 25, 26, 50 are CPT modifiers; LT/RT are HCPCS Level II modifiers.
                item["modifier"] = [
                    {"coding": [{"system": HCPCS if m.isalpha() else CPT, "code": m}]}
                    for m in ln.modifiers
                ]
            item["servicedDate"] = ln.day.isoformat()
            item["locationCodeableConcept"] = {"coding": [{"system": POS, "code": self.pos}]}
            item["quantity"] = {"value": ln.quantity}
            item["unitPrice"] = {"value": unit, **money}
            item["net"] = {"value": net, **money}
            item["encounter"] = [{"reference": _ref(enc)}]
            items.append(item)
        claim: dict[str, Any] = {
            "resourceType": "Claim",
            "identifier": [
                {"system": "https://billable.dev/fhir/claim-for-encounter", "value": enc.get("id")}
            ],
            "status": "draft",
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                        "code": self.claim_type,
                    }
                ]
            },
        }
        if self.institutional:
            claim["subType"] = sub_type(self.inpatient)
        claim |= {
            "use": "claim",
            "patient": enc.get("subject") or {"display": "unknown patient"},
            "billablePeriod": {k: v for k, v in self.period.items() if k in ("start", "end")},
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "provider": self._provider(),
            "priority": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/processpriority",
                        "code": "normal",
                    }
                ]
            },
        }
        team = self._care_team()
        if team:
            claim["careTeam"] = team
        claim["insurance"] = self._insurance()
        location = (enc.get("location") or [{}])[0].get("location")
        if location and location.get("reference"):
            claim["facility"] = location
        if dxs:
            claim["diagnosis"] = []
            for n, d in enumerate(dxs):
                entry: dict[str, Any] = {
                    "sequence": n + 1,
                    "diagnosisCodeableConcept": {
                        "coding": [{"system": ICD10CM, "code": d.code, "display": d.display}]
                    },
                }
                if self.institutional and n == 0:
                    entry["type"] = [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/ex-diagnosistype",
                                    "code": "principal",
                                }
                            ]
                        }
                    ]
                claim["diagnosis"].append(entry)
        if pcs:
            claim["procedure"] = pcs
        if items:
            claim["item"] = items
        elif not any(p.severity == "error" for p in self.problems):
            # A claim bills lines: with none and no error saying why (an institutional
            # outpatient visit without procedures) it must not pass as clean.
            self.problem(
                "error",
                "no-lines",
                "The claim has no billable line: code the services by hand",
                "Claim.item",
            )
        claim["total"] = {"value": round(total, 2), **money}
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

    def _participant(self) -> dict[str, Any] | None:
        chosen = None
        for p in self.src.encounter.get("participant") or []:
            ref = (p.get("individual") or {}).get("reference") or ""
            if not ref.startswith("Practitioner"):
                continue
            types = {str(c["code"]) for t in p.get("type") or [] for c in _codings(t)}
            if types & {"PPRF", "ATND", "PRF"}:
                return dict(p["individual"])
            chosen = chosen or dict(p["individual"])
        return chosen

    def _care_team_seq(self) -> list[int]:
        return [1] if self._participant() else []

    def _care_team(self) -> list[dict[str, Any]]:
        who = self._participant()
        if who is None:
            return []
        return [
            {
                "sequence": 1,
                "provider": who,
                "responsible": True,
                "role": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/claimcareteamrole",
                            "code": "primary",
                        }
                    ]
                },
            }
        ]

    def _provider(self) -> dict[str, Any]:
        org = self.src.encounter.get("serviceProvider")
        if org and org.get("reference"):
            return dict(org)
        who = self._participant()
        if who is not None:
            return who
        self.problem(
            "error",
            "missing-provider",
            "No billing provider: the Encounter has neither serviceProvider nor a"
            " practitioner participant",
            "Claim.provider",
        )
        return {"display": "unknown provider (missing on the Encounter)"}

    def _insurance(self) -> list[dict[str, Any]]:
        active = []
        for cov in self.src.coverages:
            if cov.get("status") != "active":
                continue
            period = cov.get("period") or {}
            start, end = _day(period.get("start")), _day(period.get("end"))
            if (start and start > self.dos) or (end and end < self.dos):
                continue
            active.append(cov)
        active.sort(key=lambda c: (c.get("order") or 999, str(c.get("id"))))
        if active:
            return [
                {"sequence": n + 1, "focal": n == 0, "coverage": {"reference": _ref(c)}}
                for n, c in enumerate(active)
            ]
        self.problem(
            "information",
            "self-pay",
            f"No Coverage of the patient is active on {self.dos}: the claim is self-pay",
            "Claim.insurance[0]",
        )
        return [
            {
                "sequence": 1,
                "focal": True,
                "coverage": {
                    "type": "Coverage",
                    "identifier": {"system": SELF_PAY_SYSTEM, "value": "pay"},
                    "display": "Self-pay (no active coverage on the date of service)",
                },
            }
        ]


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
