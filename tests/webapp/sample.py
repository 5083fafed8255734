"""The coder app's sample: the fed Synthea sample with payers, plus one visit coded with a
header diagnosis code, so that the queue holds claims of two kinds of edit.

``tests/fixtures/synthea-payers`` goes through ``billable feed synthea`` (Coverage, no
Synthea claims); then one Synthea-shaped visit is added to Marvin195 (Medicaid): a copy
of his first encounter on a later day with a Condition the EHR coded as ICD-10-CM ``E11``
(a category header, not billable: error ``code-not-billable``, ICD-10-CM Guidelines
I.A.13 / I.B.1, code to the highest specificity).
"""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import orjson

from server.feeds.synthea import feed_files

SAMPLE = Path(__file__).resolve().parent.parent / "fixtures" / "synthea-payers"
MARVIN = "Marvin195_Nader710_2b617b6e-0462-444d-0672-89bcd64249f1.json"
NAMESPACE = uuid.UUID("5b0f6c1e-6a8e-4f55-9a52-1d3c5e0c0a20")
HEADER_VISIT_DAY = "2026-11-02"


def _header_code_visit(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    first = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter")
    encounter = copy.deepcopy(first["resource"])
    eid = str(uuid.uuid5(NAMESPACE, "header-code-visit"))
    cid = str(uuid.uuid5(NAMESPACE, "header-code-condition"))
    start, end = f"{HEADER_VISIT_DAY}T09:00:00+00:00", f"{HEADER_VISIT_DAY}T09:25:00+00:00"
    encounter.update(id=eid, period={"start": start, "end": end})
    encounter["identifier"] = [
        {"use": "official", "system": "https://github.com/synthetichealth/synthea", "value": eid}
    ]
    encounter["type"] = [
        {
            "coding": [
                {
                    "system": "http://snomed.info/sct",
                    "code": "185347001",
                    "display": "Encounter for problem (procedure)",
                }
            ],
            "text": "Encounter for problem (procedure)",
        }
    ]
    for participant in encounter.get("participant") or []:
        participant["period"] = {"start": start, "end": end}
    encounter.pop("reasonCode", None)
    encounter.pop("reasonReference", None)
    condition = {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed",
                }
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "encounter-diagnosis",
                    }
                ]
            }
        ],
        "code": {
            "coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11"}],
            "text": "Type 2 diabetes mellitus",
        },
        "subject": encounter["subject"],
        "encounter": {"reference": f"urn:uuid:{eid}"},
        "onsetDateTime": start,
        "recordedDate": start,
    }
    return [
        {
            "fullUrl": f"urn:uuid:{eid}",
            "resource": encounter,
            "request": {"method": "PUT", "url": f"Encounter/{eid}"},
        },
        {
            "fullUrl": f"urn:uuid:{cid}",
            "resource": condition,
            "request": {"method": "PUT", "url": f"Condition/{cid}"},
        },
    ]


def build_sample(out: Path) -> list[Path]:
    """Write the fed sample into ``out`` and return its files in load order."""
    feed_files([SAMPLE], out)
    marvin = out / MARVIN
    bundle = orjson.loads(marvin.read_bytes())
    bundle["entry"] += _header_code_visit(bundle)
    marvin.write_bytes(orjson.dumps(bundle))
    reference = [out / "hospitalInformation.json", out / "practitionerInformation.json"]
    patients = sorted(p for p in out.glob("*.json") if p not in reference)
    return reference + patients
