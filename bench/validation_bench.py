"""µs per resource of ``server.validation.validate_resource`` (prints figures, never fails).

    .venv/bin/python bench/validation_bench.py            # this checkout
    PYTHONPATH=/path/to/other/checkout .venv/bin/python bench/validation_bench.py

Kinds: a 2 KB professional Claim (5 lines), a Patient, an Encounter, and every resource
of the Synthea sample bundles in ``tests/fixtures/synthea`` (the average over them and
the ten most frequent types). Each figure is the best of 5 rounds.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from server.validation import validate_resource  # noqa: E402

SYNTHEA = ROOT / "tests" / "fixtures" / "synthea"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"


def claim() -> dict[str, Any]:
    items = [
        {
            "sequence": n,
            "diagnosisSequence": [1],
            "productOrService": {"coding": [{"system": HCPCS, "code": code}]},
            "servicedDate": "2026-03-04",
            "quantity": {"value": 1},
            "unitPrice": {"value": 120.5, "currency": "USD"},
            "net": {"value": 120.5, "currency": "USD"},
        }
        for n, code in enumerate(["99213", "36415", "81002", "G0444", "99401"], start=1)
    ]
    return {
        "resourceType": "Claim",
        "id": "bench-claim",
        "status": "active",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                    "code": "professional",
                }
            ]
        },
        "use": "claim",
        "patient": {"reference": "Patient/p1"},
        "billablePeriod": {"start": "2026-03-04T09:00:00Z", "end": "2026-03-04T09:30:00Z"},
        "created": "2026-03-04T10:00:00Z",
        "provider": {"reference": "Organization/o1"},
        "priority": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/processpriority",
                    "code": "normal",
                }
            ]
        },
        "diagnosis": [
            {
                "sequence": 1,
                "diagnosisCodeableConcept": {"coding": [{"system": ICD, "code": "J20.9"}]},
            }
        ],
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/c1"}}],
        "item": items,
        "total": {"value": 602.5, "currency": "USD"},
    }


def patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"use": "usual", "system": "urn:mrn", "value": "12345"}],
        "name": [{"use": "official", "family": "Glover", "given": ["Jessie"]}],
        "telecom": [{"system": "phone", "value": "555-0100", "use": "home"}],
        "gender": "female",
        "birthDate": "1980-02-03",
        "address": [{"use": "home", "line": ["1 Main St"], "city": "Boston", "state": "MA"}],
    }


def encounter() -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "185349003"}]}],
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2026-03-04T09:00:00Z", "end": "2026-03-04T09:30:00Z"},
    }


def synthea() -> list[dict[str, Any]]:
    out = []
    for path in sorted(SYNTHEA.glob("*.json")):
        for entry in orjson.loads(path.read_bytes()).get("entry", []):
            out.append(entry["resource"])
    return out


def per_resource_us(resources: list[dict[str, Any]], rounds: int = 5) -> float:
    for r in resources:  # warm the caches (compiled validators)
        validate_resource(r)
    n = max(1, 2000 // len(resources))
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            for r in resources:
                validate_resource(r)
        best = min(best, (time.perf_counter() - start) / (n * len(resources)))
    return best * 1e6


def main() -> None:
    module = sys.modules["server.validation"]
    print(f"validate_resource from {module.__file__}")
    c = claim()
    print(f"Claim ({len(orjson.dumps(c))} bytes): {per_resource_us([c]):8.1f} µs")
    print(f"Patient:                {per_resource_us([patient()]):8.1f} µs")
    print(f"Encounter:              {per_resource_us([encounter()]):8.1f} µs")
    everything = synthea()
    print(
        f"Synthea, all {len(everything)} resources (average): {per_resource_us(everything):8.1f} µs"
    )
    kinds = Counter(r["resourceType"] for r in everything)
    for rtype, count in kinds.most_common(10):
        subset = [r for r in everything if r["resourceType"] == rtype]
        print(f"  {rtype:<28} x{count:<5} {per_resource_us(subset, rounds=3):8.1f} µs")


if __name__ == "__main__":
    main()
