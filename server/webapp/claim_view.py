"""One claim as a coder reviews it, assembled from the API.

The Claim, its review Task (whose contained OperationOutcome lists every edit), the
engine's Provenance of the current Claim version (its entities are the exact versions
of the Encounter, Conditions, Procedures, Coverages and coder decisions it was made
from, plus the terminology and rule tables), those source versions read back as the
EHR sent them, the decisions (``Basic``), and the ClaimResponse once adjudicated.

The trace of each code says where it came from: a diagnosis given as ICD-10-CM on a
Condition, or mapped from the Condition's SNOMED CT code by a ConceptMap row (found with
``ConceptMap/$translate``: the map, its group, priority and rule); a line from a
Procedure (given or mapped the same way), the E/M and visit rules, or a coder's decision.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from mappings.coding.model import EDIT_SYSTEM
from mappings.coding.overrides import (
    BASIC_KIND,
    NOT_ACCEPTABLE,
    OVERRIDE_CODE,
    Override,
    parse_override,
)
from mappings.coding.service import ENGINE_DEVICE, TASK_CODE
from server.webapp.fhir import FhirClient, matches
from server.webapp.queue import money, patient_name
from terminology import systems

LINE_SYSTEMS = (systems.CPT, systems.HCPCS)
PRICE_EDITS = (
    "price-illustrative",
    "price-charge-master",
    "price-pfs-stand-in",
    "carrier-priced",
    "no-price",
    "fee-bundled",
    "fee-noncovered-medicare",
    "bilateral-150",
    "multiple-procedure",
    "assistant-priced",
)


@dataclass(slots=True)
class Edit:
    severity: str
    code: str
    message: str
    location: str

    @property
    def acceptable(self) -> bool:
        return self.severity == "error" and self.code not in NOT_ACCEPTABLE


@dataclass(slots=True)
class Trace:
    source: str  # "Condition/x" or "Procedure/x" or "rule"
    source_code: str
    how: str


@dataclass(slots=True)
class DiagnosisRow:
    sequence: int
    code: str
    display: str
    traces: list[Trace] = field(default_factory=list)


@dataclass(slots=True)
class LineRow:
    sequence: int
    code: str
    display: str
    modifiers: list[str]
    units: float
    pointers: list[str]
    unit_price: str
    net: str
    price_source: str
    traces: list[Trace] = field(default_factory=list)


@dataclass(slots=True)
class ClaimView:
    claim: dict[str, Any]
    task: dict[str, Any] | None
    encounter: dict[str, Any] | None
    patient: str
    conditions: list[dict[str, Any]]
    procedures: list[dict[str, Any]]
    diagnoses: list[DiagnosisRow]
    lines: list[LineRow]
    edits: list[Edit]
    decisions: list[tuple[str, Override]]  # (Basic id, decision)
    tables: list[str]
    responses: list[dict[str, Any]]
    encounter_id: str

    @property
    def claim_id(self) -> str:
        return str(self.claim["id"])

    @property
    def status(self) -> str:
        return str(self.claim.get("status"))

    @property
    def total(self) -> str:
        return money((self.claim.get("total") or {}).get("value"))

    @property
    def accepted_edits(self) -> list[str]:
        return [f"{e.code}: {e.message}" for e in self.edits if e.acceptable]

    @property
    def stale(self) -> bool:
        return any(e.code == "override-stale" and e.severity == "error" for e in self.edits)


def _coding(
    concept: dict[str, Any] | None, systems_: tuple[str, ...] | None = None
) -> dict[str, Any]:
    for c in (concept or {}).get("coding") or []:
        if systems_ is None or c.get("system") in systems_:
            return dict(c)
    return {}


def edits_of(task: dict[str, Any] | None) -> list[Edit]:
    """The edits of the claim's last coding (the Task's contained OperationOutcome)."""
    if task is None:
        return []
    outcome = next(
        (r for r in task.get("contained") or [] if r.get("resourceType") == "OperationOutcome"),
        None,
    )
    out: list[Edit] = []
    for issue in (outcome or {}).get("issue") or []:
        code = next(
            (
                str(c.get("code"))
                for c in (issue.get("details") or {}).get("coding") or []
                if c.get("system") == EDIT_SYSTEM
            ),
            "",
        )
        if not code:
            continue
        out.append(
            Edit(
                str(issue.get("severity")),
                code,
                str(issue.get("diagnostics") or ""),
                ", ".join(issue.get("expression") or []),
            )
        )
    order = {"error": 0, "warning": 1, "information": 2}
    out.sort(key=lambda e: order.get(e.severity, 3))
    return out


def engine_provenance(
    provenances: list[dict[str, Any]], claim_id: str, version: str
) -> dict[str, Any] | None:
    """The coding engine's Provenance of this Claim version."""
    wanted = {"reference": f"Claim/{claim_id}/_history/{version}"}
    for p in provenances:
        engine = any(
            ((a.get("who") or {}).get("identifier") or {}).get("system") == ENGINE_DEVICE
            for a in p.get("agent") or []
        )
        if engine and wanted in (p.get("target") or []):
            return p
    return None


async def _translations(fhir: FhirClient, code: str, target: str, day: str) -> list[dict[str, str]]:
    params = [("system", systems.SNOMED), ("code", code), ("target", target)]
    if day:
        params.append(("date", day))
    try:
        answer = await fhir.call("GET", "ConceptMap/$translate", params)
    except Exception:  # the trace is a help; a failed look-up says so below
        return []
    found: list[dict[str, str]] = []
    for p in answer.get("parameter") or []:
        if p.get("name") != "match":
            continue
        parts = {q["name"]: q for q in p.get("part") or []}
        concept = (parts.get("concept") or {}).get("valueCoding") or {}
        found.append(
            {
                "code": str(concept.get("code") or ""),
                "map": str((parts.get("source") or {}).get("valueUri") or ""),
                "group": str((parts.get("mapGroup") or {}).get("valueInteger") or ""),
                "priority": str((parts.get("mapPriority") or {}).get("valueInteger") or ""),
                "rule": str((parts.get("mapRule") or {}).get("valueString") or ""),
            }
        )
    return found


async def _trace_codes(
    fhir: FhirClient,
    wanted: list[str],
    sources: list[dict[str, Any]],
    given_systems: tuple[str, ...],
    target: str,
    day: str,
) -> dict[str, list[Trace]]:
    """For each wanted code, the sources (given or mapped from SNOMED CT) that yield it."""
    traces: dict[str, list[Trace]] = {code: [] for code in wanted}
    lookups: list[tuple[str, str]] = []
    for resource in sources:
        ref = f"{resource['resourceType']}/{resource['id']}"
        for c in (resource.get("code") or {}).get("coding") or []:
            code = str(c.get("code") or "")
            if c.get("system") in given_systems and code in traces:
                traces[code].append(Trace(ref, code, f"given by the EHR as {c.get('system')}"))
            elif c.get("system") == systems.SNOMED:
                lookups.append((ref, code))
    results = await asyncio.gather(*(_translations(fhir, code, target, day) for _, code in lookups))
    for (ref, snomed), found in zip(lookups, results, strict=True):
        for m in found:
            if m["code"] in traces:
                rule = f", rule {m['rule']}" if m["rule"] and m["rule"] != "TRUE" else ""
                traces[m["code"]].append(
                    Trace(
                        ref,
                        f"SNOMED CT {snomed}",
                        f"mapped by {m['map']} group {m['group']} priority {m['priority']}{rule}",
                    )
                )
    return traces


async def load_claim(fhir: FhirClient, claim_id: str) -> ClaimView | None:
    claim = await fhir.read(f"Claim/{claim_id}")
    if claim is None:
        return None
    version = str((claim.get("meta") or {}).get("versionId") or "")
    encounter_id = str(((claim.get("identifier") or [{}])[0]).get("value") or "")
    tasks, provenances, decisions, responses = await asyncio.gather(
        fhir.search(
            "Task", [("focus", f"Claim/{claim_id}"), ("code", f"{TASK_CODE}|review-claim")]
        ),
        fhir.search("Provenance", [("target", f"Claim/{claim_id}"), ("_count", "100")]),
        fhir.search(
            "Basic",
            [("subject", f"Encounter/{encounter_id}"), ("code", f"{BASIC_KIND}|{OVERRIDE_CODE}")],
        ),
        fhir.search("ClaimResponse", [("request", f"Claim/{claim_id}")]),
    )
    task = next(iter(matches(tasks, "Task")), None)
    provenance = engine_provenance(matches(provenances, "Provenance"), claim_id, version)
    entity_refs = [
        str((e.get("what") or {}).get("reference") or "")
        for e in (provenance or {}).get("entity") or []
    ]
    wanted = [
        r
        for r in entity_refs
        if r.split("/", 1)[0] in ("Encounter", "Patient", "Condition", "Procedure")
    ]
    if not wanted:  # no Provenance readable: the current versions
        wanted = [f"Encounter/{encounter_id}", str((claim.get("patient") or {}).get("reference"))]
    sources = await fhir.read_many(wanted)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for body in sources.values():
        by_type.setdefault(str(body.get("resourceType")), []).append(body)
    encounter = next(iter(by_type.get("Encounter", [])), None)
    conditions = by_type.get("Condition", [])
    procedures = by_type.get("Procedure", [])
    if provenance is None:
        conditions = matches(
            await fhir.search("Condition", [("encounter", f"Encounter/{encounter_id}")])
        )
        procedures = matches(
            await fhir.search("Procedure", [("encounter", f"Encounter/{encounter_id}")])
        )
    tables = [
        str((e.get("what") or {}).get("display"))
        for e in (provenance or {}).get("entity") or []
        if (e.get("what") or {}).get("display")
    ]
    edits = edits_of(task) if claim.get("status") == "draft" or task else []
    day = str((claim.get("billablePeriod") or {}).get("start") or "")[:10]
    diagnoses = _diagnoses(claim)
    lines = _lines(claim, diagnoses, edits)
    parsed = [
        (str(b["id"]), o)
        for b in matches(decisions, "Basic")
        if (o := parse_override(b)) is not None
    ]
    parsed.sort(key=lambda pair: (pair[1].recorded, pair[0]))
    # Replaced codes are traced too: the coder's code came from the engine's.
    replaced_dx = [o.target for _, o in parsed if o.action == "dx-code"]
    replaced_lines = [o.target for _, o in parsed if o.action == "line-code"]
    dx_traces, line_traces = await asyncio.gather(
        _trace_codes(
            fhir,
            [d.code for d in diagnoses] + replaced_dx,
            conditions,
            (systems.ICD10CM,),
            systems.ICD10CM,
            day,
        ),
        _trace_codes(
            fhir, [ln.code for ln in lines] + replaced_lines, procedures, LINE_SYSTEMS, "", day
        ),
    )
    for d in diagnoses:
        d.traces = _with_decisions(dx_traces, parsed, d.code, "dx-code")
    for ln in lines:
        ln.traces = _with_decisions(line_traces, parsed, ln.code, "line-code")
        if not ln.traces and ln.code.startswith("99"):
            ln.traces = [
                Trace(
                    "rule",
                    ln.code,
                    "visit level from the E/M rules (em-levels.csv, CPT E/M guidelines)",
                )
            ]
    patient = sources.get(str((claim.get("patient") or {}).get("reference")))
    if patient is None and claim.get("patient", {}).get("reference"):
        patient = await fhir.read(str(claim["patient"]["reference"]))
    return ClaimView(
        claim=claim,
        task=task,
        encounter=encounter,
        patient=patient_name(patient),
        conditions=conditions,
        procedures=procedures,
        diagnoses=diagnoses,
        lines=lines,
        edits=edits,
        decisions=parsed,
        tables=tables,
        responses=matches(responses, "ClaimResponse"),
        encounter_id=encounter_id,
    )


def _with_decisions(
    traces: dict[str, list[Trace]], decisions: list[tuple[str, Override]], code: str, action: str
) -> list[Trace]:
    """The code's own sources, or those of the code a coder replaced with it, then the
    decision itself."""
    out = list(traces.get(code, []))
    for bid, o in decisions:
        if o.action == action and o.value.upper() == code.upper():
            out += traces.get(o.target, [])
            out.append(Trace(f"Basic/{bid}", o.target, f"replaced by coder {o.author}: {o.reason}"))
    return out


def _diagnoses(claim: dict[str, Any]) -> list[DiagnosisRow]:
    out = []
    for d in claim.get("diagnosis") or []:
        coding = _coding(d.get("diagnosisCodeableConcept"))
        out.append(
            DiagnosisRow(
                int(d.get("sequence") or 0),
                str(coding.get("code") or ""),
                str(coding.get("display") or ""),
            )
        )
    return out


def _lines(claim: dict[str, Any], dxs: list[DiagnosisRow], edits: list[Edit]) -> list[LineRow]:
    by_seq = {d.sequence: d.code for d in dxs}
    out = []
    for i, item in enumerate(claim.get("item") or []):
        coding = _coding(item.get("productOrService"))
        location = f"Claim.item[{i}]"
        here = [e for e in edits if location + "." in e.location + "."]
        notes = [e.message for e in here if e.code in PRICE_EDITS]
        releases = [e.message for e in here if e.code == "table-fallback"]
        price_source = "; ".join(
            (notes or ["Medicare Physician Fee Schedule (RVU x GPCI x CF) for the locality"])
            + releases
        )
        out.append(
            LineRow(
                sequence=int(item.get("sequence") or i + 1),
                code=str(coding.get("code") or ""),
                display=str(coding.get("display") or ""),
                modifiers=[str(_coding(m).get("code")) for m in item.get("modifier") or []],
                units=float((item.get("quantity") or {}).get("value") or 1),
                pointers=[by_seq.get(int(s), str(s)) for s in item.get("diagnosisSequence") or []],
                unit_price=money((item.get("unitPrice") or {}).get("value")),
                net=money((item.get("net") or {}).get("value")),
                price_source=price_source,
            )
        )
    return out
