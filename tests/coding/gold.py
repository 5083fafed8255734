"""Turn a gold ``Case`` into FHIR resources, and check a generated Claim against it."""

from __future__ import annotations

import copy
import hashlib
from datetime import date, timedelta
from typing import Any

import orjson

from tests.coding.cases import DOS, Case, at

ORG = "Organization/org1"
DR = "Practitioner/dr1"


def slug(case: Case) -> str:
    """The case name as a FHIR id prefix (ids allow letters, digits, '-' and '.', at most
    64 of them): a long name is cut and made unique with a hash of the whole name, so the
    prefix plus a resource suffix stays a valid id."""
    name = case.name.replace("_", "-")
    if len(name) <= 40:
        return name
    return f"{name[:31]}-{hashlib.sha1(case.name.encode()).hexdigest()[:8]}"


def resources(case: Case) -> dict[str, Any]:
    """{"patient", "encounter", "conditions", "procedures", "coverages", "prior"} with ids
    prefixed by the case name, so every case can live in one store."""
    p = slug(case)
    pid = f"{p}-p"
    subject = {"reference": f"Patient/{pid}"}
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"family": "Gold", "given": [p[:20]]}],
        "gender": case.sex,
    }
    if case.birth:
        patient["birthDate"] = case.birth
    start = at(0)
    end = at(case.minutes)
    if case.days:
        end_day = (date.fromisoformat(start[:10]) + timedelta(days=case.days)).isoformat()
        end = f"{end_day}T10:00:00Z"
    encounter: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": f"{p}-e",
        "status": "finished",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": case.enc_class,
        },
        "subject": subject,
        "participant": [
            {
                "type": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "PPRF",
                            }
                        ]
                    }
                ],
                "individual": {"reference": DR},
            }
        ],
        "period": {"start": start, "end": end},
        "serviceProvider": {"reference": ORG},
    }
    if case.types:
        encounter["type"] = [
            {"coding": [{"system": "http://snomed.info/sct", "code": t}]} for t in case.types
        ]
    for key, value in case.encounter.items():
        if value is None:
            encounter.pop(key, None)
        else:
            encounter[key] = copy.deepcopy(value)
    eref = {"reference": f"Encounter/{p}-e"}
    conditions = []
    for n, c in enumerate(case.conditions):
        c = copy.deepcopy(c)
        linked = c.pop("_linked", True)
        c.setdefault("recordedDate", f"{DOS}T08:{n:02d}:00Z")  # recorded in list order
        c["subject"] = subject
        if linked:
            c["encounter"] = eref
        conditions.append(c)
    procedures = []
    for pr in case.procedures:
        pr = copy.deepcopy(pr)
        pr["subject"] = subject
        pr["encounter"] = eref
        procedures.append(pr)
    coverages = []
    for cv in case.coverages:
        cv = copy.deepcopy(cv)
        cv["beneficiary"] = subject
        coverages.append(cv)
    # Prefix ids and the references to them.
    local = [r["id"] for r in conditions + procedures + coverages]
    text = orjson.dumps({"e": encounter, "c": conditions, "p": procedures, "v": coverages}).decode()
    for rid in sorted(local, key=len, reverse=True):
        for rtype in ("Condition", "Procedure", "Coverage"):
            text = text.replace(f'"{rtype}/{rid}"', f'"{rtype}/{p}-{rid}"')
    data = orjson.loads(text)
    for r in data["c"] + data["p"] + data["v"]:
        r["id"] = f"{p}-{r['id']}"
    prior = None
    if case.established:
        prior = {
            "resourceType": "Encounter",
            "id": f"{p}-prior",
            "status": "finished",
            "class": encounter["class"],
            "subject": subject,
            "period": {"start": "2024-06-01T09:00:00Z", "end": "2024-06-01T09:20:00Z"},
            "serviceProvider": {"reference": ORG},
        }
    # Cases of cases_coder.py add earlier encounters, PractitionerRoles, Immunizations.
    extras = case.extras(p, subject, eref) if hasattr(case, "extras") else []
    return {
        "patient": patient,
        "encounter": data["e"],
        "conditions": data["c"],
        "procedures": data["p"],
        "coverages": data["v"],
        "prior": prior,
        "extras": extras,
    }


def source_lists(r: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The earlier encounters, roles and immunizations of ``resources()``, as the coding
    service gathers them from the store."""
    extras = r["extras"]
    prior = ([r["prior"]] if r["prior"] else []) + [
        x for x in extras if x["resourceType"] == "Encounter"
    ]
    return {
        "prior_encounters": prior,
        "roles": [x for x in extras if x["resourceType"] == "PractitionerRole"],
        "immunizations": [x for x in extras if x["resourceType"] == "Immunization"],
    }


def mismatches(case: Case, claim: dict[str, Any], outcome: dict[str, Any]) -> list[str]:
    """What differs from the gold answer (empty: the engine coded it like the coder)."""
    out: list[str] = []

    def expect(what: str, got: Any, want: Any) -> None:
        if got != want:
            out.append(f"{case.name}: {what}: got {got!r}, expected {want!r}")

    expect("status", claim.get("status"), case.status)
    expect("type", claim["type"]["coding"][0]["code"], case.claim_type)
    dx = [d["diagnosisCodeableConcept"]["coding"][0]["code"] for d in claim.get("diagnosis", [])]
    expect("diagnoses", dx, case.dx)
    lines = []
    for item in claim.get("item", []):
        mods = tuple(m["coding"][0]["code"] for m in item.get("modifier", []))
        lines.append(
            (
                item["productOrService"]["coding"][0]["code"],
                mods,
                item["quantity"]["value"],
                tuple(item.get("diagnosisSequence", [])),
            )
        )
        expect("place of service", item["locationCodeableConcept"]["coding"][0]["code"], case.pos)
        if (
            abs(item["net"]["value"] - item["unitPrice"]["value"] * item["quantity"]["value"])
            > 0.01
        ):
            out.append(f"{case.name}: net != unitPrice x quantity in {item}")
        if item["encounter"] != [{"reference": f"Encounter/{slug(case)}-e"}]:
            out.append(f"{case.name}: item.encounter {item['encounter']}")
    expect("lines", lines, case.lines)
    total = round(sum(i["net"]["value"] for i in claim.get("item", [])), 2)
    expect("total", claim["total"]["value"], total)
    issues = outcome.get("issue", [])

    def code_of(issue: dict[str, Any]) -> str:
        codings = (issue.get("details") or {}).get("coding") or [{}]
        return str(codings[0].get("code"))

    edits = {code_of(i) for i in issues if i["severity"] in ("error", "warning")}
    expect("edits", edits, case.edits)
    info = {code_of(i) for i in issues if i["severity"] == "information"}
    if not case.info <= info:
        out.append(f"{case.name}: information issues {info} lack {case.info - info}")
    for issue in issues:
        if issue.get("details") and not issue.get("expression"):
            out.append(f"{case.name}: issue without a location: {issue}")
    if case.insurance is not None:
        refs = [i["coverage"].get("reference") for i in claim["insurance"]]
        want = [f"Coverage/{slug(case)}-{c}" for c in case.insurance] or [None]
        expect("insurance", refs, want)
    prices = getattr(case, "prices", None)  # cases_cms.CmsCase: unit prices per line
    if prices is not None:
        expect("unit prices", [i["unitPrice"]["value"] for i in claim.get("item", [])], prices)
    pcs = [p["procedureCodeableConcept"]["coding"][0]["code"] for p in claim.get("procedure", [])]
    expect("ICD-10-PCS", pcs, case.pcs)
    return out
