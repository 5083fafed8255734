"""The visit lines of a professional claim: E/M level, preventive codes, prolonged time,
and the E/M rules around procedures (modifiers 25 and 57, procedure-only visits).

Sources, rule by rule:

* New vs established: CPT E/M guidelines (``patient_status.py``).
* Level by total time of the billing practitioner on the date of the encounter (CPT 2021
  office, 2023 other settings; ``em-levels.csv``), excluding the time of separately
  reported services: a billed Procedure with its own ``performedPeriod`` is subtracted
  (CPT E/M guidelines, "Time"); the time of a preventive service billed with a problem
  E/M cannot be separated from FHIR data and is flagged for review.
* Prolonged services per payer kind (``payer-rules.csv``): CPT 99417 per full 15 minutes
  beyond the 99205/99215 minimum, HCPCS G2212 at the CMS thresholds for Medicare.
* Preventive visits: CPT 99381-99397 by age, or for Medicare G0402 (IPPE, first 12
  months of Part B), G0438 (first annual wellness visit), G0439 (subsequent).
* Procedures on the same day (CMS global surgery, Medicare Claims Processing Manual
  Ch. 12 sec. 40.1-40.2; NCCI Policy Manual Ch. I sec. D and Ch. XI): the decision to
  perform a minor procedure (global 000/010) is part of it, so a visit for the procedure
  has no E/M; an E/M with a minor procedure or drug administration is billed only for a
  significant, separately identifiable problem (a diagnosis other than the procedure's
  indication) and takes modifier 25, as does a problem E/M with a preventive visit; 99211
  is not billed with drug administration; the decision for major surgery (global 090) on
  the day of or before it takes modifier 57.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Protocol

from mappings.coding.dx_conventions import Lookup, secondary_only
from mappings.coding.ed_mdm import ed_mdm
from mappings.coding.fee_facts import global_period
from mappings.coding.lines import Line
from mappings.coding.model import SourceData
from mappings.coding.patient_status import patient_status
from mappings.coding.payers import PayerRule, active_coverages, coverage_kind, payer_rule
from mappings.coding.tables import RuleTables, Setting
from terminology import systems
from terminology.service import TerminologyService

CPT = systems.CPT
HCPCS = systems.HCPCS
TOP_OFFICE = {"new": "99205", "established": "99215"}


def screening_capable(code: str) -> bool:
    """Colonoscopy (45378-45398) and flexible sigmoidoscopy (45330-45350): screenings that
    become diagnostic when a finding is treated or biopsied."""
    return code.isdigit() and (45378 <= int(code) <= 45398 or 45330 <= int(code) <= 45350)


# CPT dialysis guidelines: 90935/90937 (hemodialysis) and 90945/90947 (other dialysis)
# include all E/M services related to the renal disease on the day of dialysis.
DIALYSIS = {"90935", "90937", "90945", "90947"}


def is_drug_administration(code: str) -> bool:
    """CPT 96360-96379 (hydration, injections), 96401-96549 (chemotherapy and complex
    drug administration), 90460-90474 and G0008-G0010 (vaccine administration)."""
    if code.isdigit():
        n = int(code)
        return 96360 <= n <= 96379 or 96401 <= n <= 96549 or 90460 <= n <= 90474
    return code in ("G0008", "G0009", "G0010")


class EngineLike(Lookup, Protocol):
    src: SourceData
    tables: RuleTables
    t: TerminologyService
    dos: date
    start: datetime | None
    age: float | None
    kinds: set[str]
    setting: Setting | None
    institutional: bool
    encounter_class: str

    def problem(self, severity: str, code: str, message: str, location: str) -> None: ...

    def minutes(self) -> float | None: ...


def _instant(text: str | None) -> datetime | None:
    if not text or len(text) <= 10:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class VisitCoder:
    def __init__(self, c: EngineLike) -> None:
        self.c = c
        self._status: str | None = None
        self._payer: tuple[str, PayerRule] | None = None

    # ------------------------------------------------------------- who and payer
    def status(self) -> str:
        if self._status is not None:
            return self._status
        src = self.c.src
        if src.prior_encounters is None:
            self._status = "established" if src.established else "new"
            return self._status
        found = patient_status(
            src.encounter, src.prior_encounters, src.roles, self.c.dos, src.practitioners
        )
        if found.fallback:
            self.c.problem(
                "information",
                "em-status-by-organization",
                "The rendering practitioner's specialty is unknown (no PractitionerRole with a"
                " specialty): new vs established was decided by the organization"
                f" ({found.reason}); CPT counts the same physician or the same specialty and"
                " subspecialty in the group",
                "Claim.item[0].productOrService",
            )
        self._status = "established" if found.established else "new"
        return self._status

    def payer(self) -> tuple[str, PayerRule]:
        if self._payer is not None:
            return self._payer
        active = active_coverages(self.c.src.coverages, self.c.dos)
        if not active:
            kind = "self-pay"
        else:
            kind, matched = coverage_kind(active[0])
            if not matched:
                self.c.problem(
                    "information",
                    "payer-kind-assumed",
                    f"Coverage/{active[0].get('id')} names no payer kind Billable knows"
                    " (Coverage.type, payor): commercial payer rules applied"
                    " (mappings/data/payer-kinds.csv)",
                    "Claim.insurance[0]",
                )
        self._payer = (kind, payer_rule(kind))
        return self._payer

    # ------------------------------------------------------------------ time
    def billable_minutes(self, proc_lines: list[Line]) -> float | None:
        total = self.c.minutes()
        if total is None:
            return None
        billed = {ref for ln in proc_lines for ref in ln.sources}
        spans: list[tuple[datetime, datetime]] = []
        for proc in self.c.src.procedures:
            if f"Procedure/{proc.get('id')}" not in billed:
                continue
            period = proc.get("performedPeriod") or {}
            start, end = _instant(period.get("start")), _instant(period.get("end"))
            if start and end and end > start:
                spans.append((start, end))
        # The union of the procedures' periods: overlapping procedures count once.
        spent = 0.0
        last: datetime | None = None
        for start, end in sorted(spans):
            if last is not None and start < last:
                start = last
            if end > start:
                spent += (end - start).total_seconds() / 60.0
                last = end
        spent = min(spent, total)
        if spent:
            self.c.problem(
                "information",
                "em-time-excludes-procedures",
                f"{spent:.0f} minutes of separately reported procedures are not counted in the"
                f" E/M time ({total:.0f} - {spent:.0f} min; CPT E/M guidelines, time)",
                "Claim.item[0].productOrService",
            )
        return max(0.0, total - spent)

    # ------------------------------------------------------------------ lines
    def em_lines(self, proc_lines: list[Line]) -> list[Line]:
        c = self.c
        if c.setting is None:
            c.problem(
                "error",
                "em-no-rule",
                f"No E/M rule for encounter class {c.encounter_class or '(none)'}: code the"
                " visit by hand (rules: mappings/data/encounter-settings.csv)",
                "Claim.item",
            )
            return []
        if c.institutional or c.setting.setting == "emergency":
            return []  # ED levelled after the procedure lines are known (ed_line)
        status = self.status()
        lines: list[Line] = []
        preventive = "preventive" in c.kinds
        if preventive:
            line = self.preventive_line(status)
            if line is not None:
                lines.append(line)
        if not preventive or "problem" in c.kinds:
            lines += self.problem_lines(status, proc_lines, with_preventive=preventive)
        return lines

    def preventive_line(self, status: str) -> Line | None:
        c = self.c
        kind, rule = self.payer()
        if rule.preventive == "medicare":
            return self.medicare_preventive()
        age = int(c.age) if c.age is not None else None
        code = None
        if age is not None:
            for lo, hi, new, old, _n, _a in c.tables.preventive:
                if lo <= age < hi:
                    code = old if status == "established" else new
        if code is None:
            c.problem(
                "error",
                "missing-patient-data",
                "A preventive visit is coded by age: Patient.birthDate is missing",
                "Claim.patient",
            )
            return None
        return Line(
            code, CPT, f"Preventive visit, {status} patient", c.dos, em=True, preventive=True
        )

    def medicare_preventive(self) -> Line:
        """G0402 within 12 months of Part B; else G0438 once, then G0439 (MCPM Ch. 12)."""
        c = self.c
        active = active_coverages(c.src.coverages, c.dos)
        start = None
        if active:
            text = ((active[0].get("period") or {}).get("start") or "")[:10]
            start = date.fromisoformat(text) if len(text) == 10 else None
        if start is not None and (c.dos - start).days < 365:
            code, why = "G0402", f"initial preventive physical examination (Part B from {start})"
        else:
            since = start.isoformat() if start else ""
            earlier = [
                p
                for p in c.src.prior_encounters or []
                if self._preventive_type(p)
                and ((p.get("period") or {}).get("start") or "") >= since
            ]
            if earlier:
                code, why = "G0439", "subsequent annual wellness visit (an earlier one is on file)"
            else:
                code, why = "G0438", "first annual wellness visit (no earlier one on file)"
        c.problem(
            "information",
            "medicare-preventive",
            f"Medicare does not pay 99381-99397: {code}, {why} (Medicare Claims Processing"
            " Manual Ch. 12 sec. 30.6.1.1, Ch. 18 sec. 80 and 140)",
            "Claim.item[0].productOrService",
        )
        return Line(code, HCPCS, "Medicare preventive visit", c.dos, em=True, preventive=True)

    def _preventive_type(self, encounter: dict[str, Any]) -> bool:
        tables = self.c.tables
        for concept in encounter.get("type") or []:
            for coding in concept.get("coding") or []:
                rule = tables.type_codes.get(str(coding.get("code")))
                if rule and rule[0] == "preventive":
                    return True
            text = " ".join(
                [concept.get("text") or ""]
                + [x.get("display") or "" for x in concept.get("coding") or []]
            ).lower()
            if any(w in text for w, kind, _ in tables.type_words if kind == "preventive"):
                return True
        return False

    def problem_lines(
        self, status: str, proc_lines: list[Line], *, with_preventive: bool
    ) -> list[Line]:
        c = self.c
        assert c.setting is not None
        minutes = self.billable_minutes(proc_lines)
        rows = c.tables.em_levels.get((c.setting.setting, status), [])
        if minutes is None:
            c.problem(
                "error",
                "em-no-time",
                "The visit is levelled by total time, but the Encounter has neither length"
                " nor a complete period",
                "Claim.item[0]",
            )
            return []
        if with_preventive:
            c.problem(
                "warning",
                "em-time-includes-preventive",
                f"The problem E/M is levelled on the encounter's {minutes:.0f} minutes, which"
                " include the preventive service; CPT excludes that time: confirm the level"
                " from the time or the medical decision making of the problem alone",
                "Claim.item[1].productOrService",
            )
        code = None
        for threshold, candidate in rows:
            if minutes >= threshold:
                code = candidate
        if code is None:
            new_office = status == "new" and c.setting.setting == "office"
            c.problem(
                "error",
                "em-new-under-15" if new_office else "em-below-time",
                f"A {status}-patient {c.setting.setting} visit of {minutes:.0f}"
                f" minutes is below the lowest time threshold"
                f" ({rows[0][0] if rows else '?'} min): review the documentation and"
                f" code by medical decision making (the lowest level is on the draft)",
                "Claim.item[0].productOrService",
            )
            code = rows[0][1] if rows else None
        if code is None:
            return []
        lines = [
            Line(code, CPT, f"Office visit, {status} patient, {minutes:.0f} min", c.dos, em=True)
        ]
        if c.setting.setting == "office" and code == TOP_OFFICE[status]:
            prolonged = self.prolonged_line(status, minutes)
            if prolonged is not None:
                lines.append(prolonged)
        return lines

    def prolonged_line(self, status: str, minutes: float) -> Line | None:
        kind, rule = self.payer()
        base = rule.prolonged_new_base if status == "new" else rule.prolonged_established_base
        units = int((minutes - base) // 15)
        if units < 1:
            return None
        code = rule.prolonged_code
        self.c.problem(
            "information",
            "em-prolonged",
            f"{minutes:.0f} minutes with {TOP_OFFICE[status]}: {code} x {units} ({kind} payer:"
            f" each full 15 minutes beyond {base}; mappings/data/payer-rules.csv)",
            "Claim.item[1].productOrService",
        )
        system = HCPCS if code[0].isalpha() else CPT
        return Line(code, system, "Prolonged office visit time", self.c.dos, units, addon=True)

    def ed_line(
        self,
        n_dx: int,
        n_procedures: int,
        dx_codes: list[str] | None = None,
        proc_lines: list[Line] | None = None,
    ) -> Line:
        c = self.c
        derived = ed_mdm(c.src.encounter, dx_codes or [], proc_lines or [])
        if derived is not None:
            code, why = derived
            c.problem(
                "information",
                "ed-level-mdm",
                f"Emergency department level {code} by medical decision making: {why} (CPT"
                " 2023 ED E/M guidelines, 2 of 3 MDM elements; mappings/data/ed-mdm.csv)",
                "Claim.item[0].productOrService",
            )
            return Line(code, CPT, "Emergency department visit", c.dos, em=True)
        count = n_dx + n_procedures
        code = c.tables.ed_levels[0][1]
        for threshold, candidate in c.tables.ed_levels:
            if count >= threshold:
                code = candidate
        c.problem(
            "warning",
            "ed-level-review",
            f"Emergency department level {code} assigned by the documented proxy rule"
            f" ({n_dx} diagnoses + {n_procedures} procedures; mappings/data/ed-levels.csv):"
            " the level depends on medical decision making, which the data does not carry;"
            " confirm it",
            "Claim.item[0].productOrService",
        )
        return Line(code, CPT, "Emergency department visit", c.dos, em=True)

    def screening_turned_diagnostic(self, dxs: list[Any], proc_lines: list[Line]) -> list[Any]:
        """A screening colonoscopy that finds something: the diagnostic procedure code, the
        screening Z code first-listed and the finding second (ICD-10-CM Guidelines
        I.C.21.c.5; CMS MLN colorectal cancer screening), and the payer's modifier (PT for
        Medicare, 33 otherwise; ``payer-rules.csv``)."""
        screening = next((d for d in dxs if d.code.startswith(("Z12.1", "Z12.0"))), None)
        lines = [ln for ln in proc_lines if screening_capable(ln.code)]
        findings = [d for d in dxs if d is not screening and not d.code.startswith("Z")]
        if screening is None or not lines or not findings:
            return dxs
        kind, rule = self.payer()
        for ln in lines:
            if rule.screening_modifier not in ln.modifiers:
                ln.modifiers.append(rule.screening_modifier)
        first = next((d for d in findings if any(d.code in ln.dx for ln in lines)), findings[0])
        out = [screening, first] + [d for d in dxs if d not in (screening, first)]
        self.c.problem(
            "information",
            "screening-became-diagnostic",
            f"Screening turned diagnostic: {screening.code} first, {first.code} second, modifier"
            f" {rule.screening_modifier} ({kind}) on {', '.join(ln.code for ln in lines)}"
            " (ICD-10-CM Guidelines I.C.21.c.5; Medicare Claims Processing Manual Ch. 18"
            " sec. 60.2; CPT modifier 33)",
            "Claim.diagnosis[0]",
        )
        return out

    # ------------------------------------------------------- around procedures
    def _indication(self, line: Line, dx_codes: list[str]) -> tuple[set[str], bool]:
        """(the diagnoses the procedure is for, inferred?)."""
        if line.dx:
            return {d for d in line.dx if d in dx_codes}, False
        rule = self.c.tables.necessity.get(line.code)
        if rule:
            supported = {d for d in dx_codes if d.startswith(rule[1])}
            if supported:
                return supported, True
        first = next((d for d in dx_codes if not secondary_only(self.c, d)), None)
        return ({first} if first else set()), True

    def _type_is_procedure(self, line: Line) -> bool:
        types = {
            str(coding.get("code"))
            for concept in self.c.src.encounter.get("type") or []
            for coding in concept.get("coding") or []
        }
        for proc in self.c.src.procedures:
            if f"Procedure/{proc.get('id')}" in line.sources:
                codes = {str(x.get("code")) for x in (proc.get("code") or {}).get("coding") or []}
                if codes & types:
                    return True
        return False

    def visit_rules(
        self, em: list[Line], proc_lines: list[Line], dx_codes: list[str]
    ) -> list[Line]:
        c = self.c
        if not em or c.institutional:
            return em
        dos = c.dos
        kinds = {ln.code: global_period(ln.code, ln.day, c.t, c.tables) for ln in proc_lines}
        minor = [ln for ln in proc_lines if kinds[ln.code] in ("000", "010") and ln.day == dos]
        drug = [ln for ln in proc_lines if is_drug_administration(ln.code) and ln.day == dos]
        major = [
            ln for ln in proc_lines if kinds[ln.code] == "090" and 0 <= (ln.day - dos).days <= 1
        ]
        preventive = [ln for ln in em if ln.preventive]
        problem = [ln for ln in em if not ln.preventive and not ln.addon]
        out = list(em)
        if drug:
            for ln in [p for p in problem if p.code == "99211"]:
                out.remove(ln)
                problem.remove(ln)
                c.problem(
                    "information",
                    "em-99211-with-drug-admin",
                    "99211 is not reported with drug administration on the same day (NCCI"
                    " Policy Manual Ch. XI; the nurse visit is part of the administration)",
                    "Claim.item",
                )
        dialysis = [ln for ln in proc_lines if ln.code in DIALYSIS and ln.day == dos]
        procedures = minor + drug + dialysis
        if problem and procedures and not preventive:
            indications: set[str] = set()
            inferred = False
            explicit_type = False
            for ln in procedures:
                found, guess = self._indication(ln, dx_codes)
                indications |= found
                explicit_type = explicit_type or self._type_is_procedure(ln)
                inferred = inferred or (guess and not explicit_type)
            # A separately identifiable problem is a condition: Z codes (encounter reasons,
            # screenings, status and history) are not problems the E/M could treat.
            others = [
                d
                for d in dx_codes
                if d not in indications and not d.startswith("Z") and not secondary_only(c, d)
            ]
            if not others:
                for ln in em:
                    if not ln.preventive and ln in out:
                        out.remove(ln)
                shown = ", ".join(sorted(indications)) or "the procedure's indication"
                c.problem(
                    "warning" if inferred else "information",
                    "em-procedure-only",
                    f"No E/M: the visit is for {', '.join(p.code for p in procedures)} ({shown});"
                    " the decision to perform a minor procedure or drug administration is"
                    " part of it, and dialysis includes the related E/M (CMS global surgery,"
                    " MCPM Ch. 12 sec. 40.1; NCCI Policy Manual Ch. I sec. D; CPT dialysis)"
                    + (
                        "; the indication was inferred (no Procedure.reasonReference): confirm"
                        " no separate problem was addressed"
                        if inferred
                        else ""
                    ),
                    "Claim.item",
                )
                return out
            for ln in problem:
                if "25" not in ln.modifiers:
                    ln.modifiers.append("25")
        if preventive:
            for ln in problem:
                if "25" not in ln.modifiers:
                    ln.modifiers.append("25")
            if minor:
                for ln in preventive:
                    ln.modifiers.append("25")
        if major:
            for ln in problem:
                ln.modifiers.append("57")
            c.problem(
                "information",
                "em-decision-for-surgery",
                f"Modifier 57: the E/M on the day of or before the major procedure"
                f" {major[0].code} (090-day global) is the decision for surgery (MCPM Ch. 12"
                " sec. 40.2.A.4); if the decision was made earlier, the visit is part of the"
                " global package",
                "Claim.item[0].modifier",
            )
        return out
