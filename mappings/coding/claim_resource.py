"""The Claim resource of one coded encounter: header, diagnoses, procedures and items.

Serialises what the engine decided (diagnoses in claim order, priced lines, ICD-10-PCS
procedures) as a FHIR R4 Claim: each item with its diagnosis pointers (at most
``CodingConfig.max_pointers``, never to a code that may not be first-listed first),
modifiers, place of service and amounts; the parties come from ``claim_parties``. A claim
with no item and no error saying why gets one (``no-lines``): it must not pass as clean.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Protocol

from mappings.coding.claim_parties import care_team, care_team_seq, insurance, provider
from mappings.coding.diagnoses import Dx
from mappings.coding.dx_conventions import pointer_order
from mappings.coding.fhir_values import ref as _ref
from mappings.coding.institutional import REVENUE, sub_type
from mappings.coding.lines import Line
from mappings.coding.model import CodingConfig, Problem, SourceData
from mappings.coding.tables import RuleTables
from terminology import systems
from terminology.service import TerminologyService

ICD10CM = systems.ICD10CM
CPT = systems.CPT
HCPCS = systems.HCPCS
POS = systems.POS


class CoderLike(Protocol):
    """What the Claim needs from the engine (``engine._Coder``)."""

    src: SourceData
    t: TerminologyService
    tables: RuleTables
    config: CodingConfig
    dos: date
    period: dict[str, Any]
    pos: str
    claim_type: str
    institutional: bool
    inpatient: bool
    problems: list[Problem]

    def problem(self, severity: str, code: str, message: str, location: str) -> None: ...


def diagnosis_pointers(c: CoderLike, line: Line, dx_codes: list[str]) -> list[int]:
    """``Claim.item.diagnosisSequence``: the line's own diagnoses, the coverage rule's,
    then the claim's in the order a line may point to them."""
    preferred = [code for code in line.dx if code in dx_codes]
    rule = c.tables.necessity.get(line.code)
    if rule:
        preferred += [code for code in dx_codes if code.startswith(rule[1])]
    # Never a code that cannot be first-listed first; on a problem E/M never the
    # routine-exam Z00/Z01 first (the problem justifies the line); claim order otherwise.
    problem_em = (line.em or line.addon) and not line.preventive
    preferred += pointer_order(c, dx_codes, problem_em=problem_em)
    out: list[int] = []
    for code in preferred:
        seq = dx_codes.index(code) + 1
        if seq not in out:
            out.append(seq)
        if len(out) == c.config.max_pointers:
            break
    return out


def build_claim(
    c: CoderLike, dxs: list[Dx], lines: list[Line], pcs: list[dict[str, Any]]
) -> dict[str, Any]:
    """The Claim (no id, status ``draft``) of the diagnoses, the kept lines and ``pcs``."""
    enc = c.src.encounter
    cfg = c.config
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
        if 1 in care_team_seq(c):
            item["careTeamSequence"] = [1]
        pointers = diagnosis_pointers(c, ln, dx_codes) if dx_codes else []
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
        item["locationCodeableConcept"] = {"coding": [{"system": POS, "code": c.pos}]}
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
                    "code": c.claim_type,
                }
            ]
        },
    }
    if c.institutional:
        claim["subType"] = sub_type(c.inpatient)
    claim |= {
        "use": "claim",
        "patient": enc.get("subject") or {"display": "unknown patient"},
        "billablePeriod": {k: v for k, v in c.period.items() if k in ("start", "end")},
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "provider": provider(c),
        "priority": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/processpriority",
                    "code": "normal",
                }
            ]
        },
    }
    team = care_team(c)
    if team:
        claim["careTeam"] = team
    claim["insurance"] = insurance(c)
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
            if c.institutional and n == 0:
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
    elif not any(p.severity == "error" for p in c.problems):
        # A claim bills lines: with none and no error saying why (an institutional
        # outpatient visit without procedures) it must not pass as clean.
        c.problem(
            "error",
            "no-lines",
            "The claim has no billable line: code the services by hand",
            "Claim.item",
        )
    claim["total"] = {"value": round(total, 2), **money}
    return claim
