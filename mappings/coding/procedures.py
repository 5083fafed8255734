"""Procedures of one encounter: completed Procedures become CPT/HCPCS service lines.

Each ``Procedure.code`` is CPT or HCPCS as given, else mapped from SNOMED CT (the
reviewed supplement when the map has no line code); a code the map says is not
separately reportable, or an E/M code (the visit line is computed from the Encounter),
bills no line. Laterality comes from ``Procedure.bodySite`` (modifiers LT/RT, 50 for
both sides), then the modifiers written on the Procedure. Lines of the same code, day
and modifiers add up in quantity. On an institutional claim the ICD-10-PCS code of each
procedure is also kept for ``Claim.procedure``.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol

from mappings.coding.fhir_values import BOTH, LEFT, RIGHT
from mappings.coding.fhir_values import (
    codings as _codings,
)
from mappings.coding.fhir_values import (
    day as _day,
)
from mappings.coding.fhir_values import (
    ref as _ref,
)
from mappings.coding.fhir_values import (
    text as _text,
)
from mappings.coding.lines import Line
from mappings.coding.model import SourceData
from mappings.coding.tables import RuleTables
from mappings.pricing.modifiers import explicit_modifiers
from terminology import systems

PCS = systems.ICD10PCS
CPT = systems.CPT
HCPCS = systems.HCPCS
SCT = systems.SNOMED
LINE_SYSTEMS = (CPT, HCPCS)


class CoderLike(Protocol):
    """What the procedure coder needs from the engine (``engine._Coder``)."""

    src: SourceData
    tables: RuleTables
    dos: date
    institutional: bool

    def problem(self, severity: str, code: str, message: str, location: str) -> None: ...

    def translate(self, code: str, target: str | None) -> list[Any]: ...


def procedure_lines(
    c: CoderLike, by_condition: dict[str, list[str]]
) -> tuple[list[Line], list[dict[str, Any]]]:
    """The service lines of the completed Procedures, and their ``Claim.procedure``
    entries (ICD-10-PCS, institutional claims only)."""
    em_codes = c.tables.em_codes()
    lines: dict[tuple[str, date, tuple[str, ...]], Line] = {}
    pcs: list[dict[str, Any]] = []
    for proc in c.src.procedures:
        ref = _ref(proc)
        if proc.get("status") != "completed":
            continue
        loc = f"{ref}.code"
        day = (
            _day(proc.get("performedDateTime"))
            or _day((proc.get("performedPeriod") or {}).get("start"))
            or c.dos
        )
        code_sys = _procedure_code(c, proc.get("code"), loc)
        if c.institutional:
            pcs_code = _procedure_pcs(c, proc.get("code"))
            if pcs_code:
                pcs.append(
                    {
                        "sequence": len(pcs) + 1,
                        "date": day.isoformat(),
                        "procedureCodeableConcept": {
                            "coding": [{"system": PCS, "code": pcs_code[0], "display": pcs_code[1]}]
                        },
                    }
                )
        if code_sys is None:
            continue
        code, system, display = code_sys
        if code in em_codes or (code.isdigit() and 99202 <= int(code) <= 99499):
            c.problem(
                "information",
                "em-from-procedure",
                f"{ref} maps to the E/M code {code}; the visit line is computed from the"
                " Encounter instead",
                loc,
            )
            continue
        modifiers = laterality(proc)
        modifiers += [m for m in explicit_modifiers(proc) if m not in modifiers]
        dx: list[str] = []
        for reason in proc.get("reasonReference") or []:
            dx += by_condition.get((reason or {}).get("reference") or "", [])
        key = (code, day, tuple(modifiers))
        line = lines.get(key)
        if line is None:
            lines[key] = Line(code, system, display, day, 1, modifiers, dx, [ref])
        else:
            line.quantity += 1
            line.sources.append(ref)
            line.dx += [d for d in dx if d not in line.dx]
    return list(lines.values()), pcs


def laterality(proc: dict[str, Any]) -> list[str]:
    """Modifiers LT/RT from the Procedure's body sites; 50 when both sides are named."""
    sides: set[str] = set()
    for site in proc.get("bodySite") or []:
        codes = {str(c["code"]) for c in _codings(site)}
        text = _text(site)
        if BOTH in codes or "bilateral" in text:
            sides.add("50")
        if LEFT in codes or "left" in text.split():
            sides.add("LT")
        if RIGHT in codes or "right" in text.split():
            sides.add("RT")
    if "50" in sides or {"LT", "RT"} <= sides:
        return ["50"]
    return sorted(sides)


def _procedure_code(c: CoderLike, concept: Any, loc: str) -> tuple[str, str, str] | None:
    codings = _codings(concept)
    for cd in codings:
        system = systems.canonical(str(cd.get("system") or ""))
        if system in LINE_SYSTEMS:
            return (
                systems.normalize_code(system, str(cd["code"])),
                system,
                cd.get("display") or "",
            )
    for cd in codings:
        if systems.canonical(str(cd.get("system") or "")) != SCT:
            continue
        code = str(cd["code"])
        matches = [m for m in c.translate(code, None) if m.target_system in LINE_SYSTEMS]
        extra = c.tables.supplement.get(code)
        if not matches and extra and extra[0] in ("cpt", "hcpcs"):
            return extra[1], CPT if extra[0] == "cpt" else HCPCS, extra[2]
        if not matches:
            if c.institutional and _procedure_pcs(c, concept):
                return None
            c.problem(
                "error",
                "unmapped",
                f"SNOMED CT {code} ({cd.get('display') or ''}) has no CPT/HCPCS map: code the"
                " procedure by hand or add it to the map",
                loc,
            )
            return None
        chosen = next((m for m in matches if m.code), matches[0])
        if chosen.code is None:
            advice = f": {chosen.advice}" if chosen.advice else ""
            c.problem(
                "information",
                "not-reportable",
                f"SNOMED CT {code} ({cd.get('display') or ''}) is not separately"
                f" reportable{advice}",
                loc,
            )
            return None
        return chosen.code, chosen.target_system, chosen.display
    shown = ", ".join(f"{cd.get('system')}|{cd.get('code')}" for cd in codings) or "no code"
    c.problem("error", "unmapped", f"Procedure code {shown} is not CPT, HCPCS or SNOMED CT", loc)
    return None


def _procedure_pcs(c: CoderLike, concept: Any) -> tuple[str, str] | None:
    for cd in _codings(concept):
        system = systems.canonical(str(cd.get("system") or ""))
        if system == PCS:
            return str(cd["code"]), cd.get("display") or ""
        if system == SCT:
            for m in c.translate(str(cd["code"]), PCS):
                if m.code:
                    return m.code, m.display
    return None
