"""µs per resource of ``server.validation.validate_resource`` (prints figures, never fails).

    .venv/bin/python -m bench.validation_bench            # this checkout
    PYTHONPATH=/path/to/other/checkout .venv/bin/python bench/validation_bench.py

Kinds: a 2 KB professional Claim (5 lines), a Patient, an Encounter, and every resource
of the Synthea sample bundles in ``tests/fixtures/synthea`` (the average over them and
the ten most frequent types). Each figure is the best of 5 rounds, as wall time and as
this process's CPU time (``time.process_time``: on a shared machine the wall figure
carries other people's load, the CPU figure much less). ``figures()`` returns them.
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


def per_resource_us(resources: list[dict[str, Any]], rounds: int = 5) -> tuple[float, float]:
    """(wall µs, CPU µs) per resource, each the best round."""
    for r in resources:  # warm the caches (compiled validators)
        validate_resource(r)
    n = max(1, 2000 // len(resources))
    best_wall = best_cpu = float("inf")
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            for r in resources:
                validate_resource(r)
        count = n * len(resources)
        best_wall = min(best_wall, (time.perf_counter() - wall) / count)
        best_cpu = min(best_cpu, (time.process_time() - cpu) / count)
    return best_wall * 1e6, best_cpu * 1e6


def figures(**options: Any) -> dict[str, object]:
    """µs per resource (wall and CPU) by kind; ``rounds`` (default 5) per figure."""
    rounds = int(options.get("rounds", 5))
    c = claim()
    out: dict[str, object] = {"claim_bytes": len(orjson.dumps(c))}
    for name, resources in (("claim", [c]), ("patient", [patient()]), ("encounter", [encounter()])):
        wall, cpu = per_resource_us(resources, rounds)
        out[f"{name}_us"], out[f"{name}_cpu_us"] = round(wall, 1), round(cpu, 1)
    everything = synthea()
    wall, cpu = per_resource_us(everything, rounds)
    out["synthea_resources"] = len(everything)
    out["synthea_avg_us"], out["synthea_avg_cpu_us"] = round(wall, 1), round(cpu, 1)
    by_type: dict[str, dict[str, float]] = {}
    for rtype, count in Counter(r["resourceType"] for r in everything).most_common(10):
        subset = [r for r in everything if r["resourceType"] == rtype]
        wall, cpu = per_resource_us(subset, max(1, min(rounds, 3)))
        by_type[rtype] = {"count": count, "us": round(wall, 1), "cpu_us": round(cpu, 1)}
    out["by_type"] = by_type
    return out


def main() -> None:
    module = sys.modules["server.validation"]
    print(f"validate_resource from {module.__file__}")
    f = figures()
    print(f"{'kind':<36} {'wall µs':>9} {'CPU µs':>9}")
    label = f"Claim ({f['claim_bytes']} bytes)"
    print(f"{label:<36} {f['claim_us']:>9} {f['claim_cpu_us']:>9}")
    print(f"{'Patient':<36} {f['patient_us']:>9} {f['patient_cpu_us']:>9}")
    print(f"{'Encounter':<36} {f['encounter_us']:>9} {f['encounter_cpu_us']:>9}")
    label = f"Synthea, all {f['synthea_resources']} (average)"
    print(f"{label:<36} {f['synthea_avg_us']:>9} {f['synthea_avg_cpu_us']:>9}")
    by_type = f["by_type"]
    assert isinstance(by_type, dict)
    for rtype, row in by_type.items():
        print(f"  {rtype + ' x' + str(row['count']):<34} {row['us']:>9} {row['cpu_us']:>9}")


if __name__ == "__main__":
    main()
