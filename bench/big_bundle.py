"""One patient's whole history as one transaction: a generated 100 MB, 40,000-entry bundle.

Usage:
    python -m bench.big_bundle [--mb 100] [--entries 40000] [--keep PATH]

Generates a synthetic, Synthea-shaped transaction (one Patient; Encounters, each with
Observations, a Condition, a Procedure, a DiagnosticReport and a DocumentReference
whose base64 note fills the bundle to the size asked; PUT entries with ``urn:uuid:``
fullUrls and references, as ``billable feed synthea`` writes them), starts a fresh
``billable serve`` with its DEFAULT limits (SQLite, auth off, coding manual), and
POSTs it. Prints the server's idle and peak RSS (VmHWM, from /proc) against the body
size, its CPU time, the wall time, and the answer to a body one byte over the limit
(a 413 naming the setting; sent as headers only, the server answers from
Content-Length). Wall figures depend on the (shared) machine; CPU and memory do not.

``figures(**options)`` returns the headline numbers (``bench/run_all.py``).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import os
import random
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from bench._server import running_server, tree_cpu_seconds
from bench.ingest_perf import memory_mib

NAMESPACE = uuid.UUID("8f0c1a52-3c55-4c1e-9d0b-0a6f3e1b2c44")
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
VITALS = [
    ("8302-2", "Body Height", "cm", 150.0, 190.0),
    ("29463-7", "Body Weight", "kg", 50.0, 110.0),
    ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", 18.0, 35.0),
    ("8867-4", "Heart rate", "/min", 55.0, 100.0),
    ("9279-1", "Respiratory rate", "/min", 12.0, 20.0),
    ("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", 70.0, 140.0),
]
HEADERS = {
    "Content-Type": "application/fhir+json",
    "Accept": "application/fhir+json",
    "Prefer": "return=minimal",
}


def _id(*parts: object) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(map(str, parts))))


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    rtype, rid = resource["resourceType"], resource["id"]
    return {
        "fullUrl": f"urn:uuid:{rid}",
        "resource": resource,
        "request": {"method": "PUT", "url": f"{rtype}/{rid}"},
    }


def _coded(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _encounter_entries(
    patient: str, n: int, rng: random.Random, observations: int, note: bytes
) -> list[dict[str, Any]]:
    day = f"{2012 + n // 400}-{1 + n // 35 % 12:02d}-{1 + n % 28:02d}"
    start, end = f"{day}T09:00:00+00:00", f"{day}T09:30:00+00:00"
    enc = _id(patient, "enc", n)
    subject = {"reference": f"urn:uuid:{patient}"}
    encounter_ref = {"reference": f"urn:uuid:{enc}"}
    out = [
        {
            "resourceType": "Encounter",
            "id": enc,
            "status": "finished",
            "class": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "AMB",
            },
            "type": [_coded(SNOMED, "185349003", "Encounter for check up (procedure)")],
            "subject": subject,
            "period": {"start": start, "end": end},
        }
    ]
    obs_ids = []
    for k in range(observations):
        code, display, unit, lo, hi = VITALS[k % len(VITALS)]
        oid = _id(patient, "obs", n, k)
        obs_ids.append(oid)
        out.append(
            {
                "resourceType": "Observation",
                "id": oid,
                "status": "final",
                "category": [
                    _coded(
                        "http://terminology.hl7.org/CodeSystem/observation-category",
                        "vital-signs",
                        "Vital signs",
                    )
                ],
                "code": _coded(LOINC, code, display),
                "subject": subject,
                "encounter": encounter_ref,
                "effectiveDateTime": start,
                "issued": start,
                "valueQuantity": {
                    "value": round(rng.uniform(lo, hi), 1),
                    "unit": unit,
                    "system": "http://unitsofmeasure.org",
                    "code": unit,
                },
            }
        )
    out.append(
        {
            "resourceType": "Condition",
            "id": _id(patient, "cond", n),
            "clinicalStatus": _coded(
                "http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"
            ),
            "code": _coded(SNOMED, "444814009", "Viral sinusitis (disorder)"),
            "subject": subject,
            "encounter": encounter_ref,
            "onsetDateTime": start,
        }
    )
    out.append(
        {
            "resourceType": "Procedure",
            "id": _id(patient, "proc", n),
            "status": "completed",
            "code": _coded(SNOMED, "430193006", "Medication reconciliation (procedure)"),
            "subject": subject,
            "encounter": encounter_ref,
            "performedPeriod": {"start": start, "end": end},
        }
    )
    out.append(
        {
            "resourceType": "DiagnosticReport",
            "id": _id(patient, "report", n),
            "status": "final",
            "code": _coded(LOINC, "85354-9", "Blood pressure panel"),
            "subject": subject,
            "encounter": encounter_ref,
            "effectiveDateTime": start,
            "issued": start,
            "result": [{"reference": f"urn:uuid:{o}"} for o in obs_ids],
        }
    )
    out.append(
        {
            "resourceType": "DocumentReference",
            "id": _id(patient, "doc", n),
            "status": "current",
            "type": _coded(LOINC, "34117-2", "History and physical note"),
            "subject": subject,
            "date": start,
            "content": [
                {
                    "attachment": {
                        "contentType": "text/plain; charset=utf-8",
                        "data": base64.b64encode(note).decode(),
                    }
                }
            ],
            "context": {"encounter": [encounter_ref], "period": {"start": start, "end": end}},
        }
    )
    return out


def make_bundle(megabytes: float = 100, entries: int = 40_000, seed: int = 7) -> bytes:
    """A transaction of about ``entries`` entries and ``megabytes`` × 10^6 bytes."""
    rng = random.Random(seed)
    patient = _id("patient", seed)
    per_encounter = 11  # Encounter, 6 Observations, Condition, Procedure, report, document
    encounters = max(1, (entries - 1) // per_encounter)

    def build(note_size: int) -> bytes:
        rng.seed(seed)
        note = (b"Subjective: well. Objective: vitals stable. Plan: follow up. " * 2000)[:note_size]
        resources: list[dict[str, Any]] = [
            {
                "resourceType": "Patient",
                "id": patient,
                "identifier": [{"system": "https://example.org/mrn", "value": f"BIG-{seed}"}],
                "name": [{"family": "Bundle", "given": ["Biggest"]}],
                "gender": "female",
                "birthDate": "1950-01-01",
            }
        ]
        for n in range(encounters):
            resources += _encounter_entries(patient, n, rng, 6, note)
        extra = entries - len(resources)
        for k in range(max(0, extra)):  # top up to the exact count with observations
            resources += _encounter_entries(patient, encounters + k, rng, 1, note)[1:2]
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [_entry(r) for r in resources[:entries]],
        }
        return orjson.dumps(bundle)

    first = build(0)
    room = megabytes * 1e6 - len(first)
    note_size = max(0, int(room / encounters * 3 / 4))  # base64 grows 4/3
    return build(note_size)


def _post(base: str, body: bytes) -> tuple[int, bytes]:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=1800)
    conn.request("POST", "/fhir", body=body, headers=HEADERS)
    response = conn.getresponse()
    answer = response.read()
    conn.close()
    return response.status, answer


def _post_declared_only(base: str, length: int) -> tuple[int, str]:
    """Headers announcing ``length`` bytes, no body: the server answers from them."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.putrequest("POST", "/fhir")
    for key, value in {**HEADERS, "Content-Length": str(length)}.items():
        conn.putheader(key, value)
    conn.endheaders()
    response = conn.getresponse()
    outcome = orjson.loads(response.read())
    conn.close()
    return response.status, outcome["issue"][0]["diagnostics"]


def figures(
    megabytes: float = 100, entries: int = 40_000, keep: str | None = None
) -> dict[str, object]:
    """Peak server memory and cost of one generated bundle, posted with default limits."""
    body = make_bundle(megabytes, entries)
    if keep:
        Path(keep).write_bytes(body)
    from server.config import Settings

    limit = Settings().max_bundle_bytes
    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:///{Path(tmp) / 'big.db'}"
        args = ("--log-level", "warning", "--coding", "manual", "--adjudication", "manual")
        with running_server(store, args) as (base, pid):
            time.sleep(2)  # let start-up work (terminology warm-up) settle
            idle = memory_mib(pid, "VmRSS")
            idle_peak = memory_mib(pid, "VmHWM")
            cpu_before = tree_cpu_seconds(pid)
            started = time.perf_counter()
            samples: list[tuple[float, float, float]] = []
            done = threading.Event()

            def sample() -> None:  # (seconds, RSS MiB, CPU seconds) while the bundle runs
                while not done.wait(0.5):
                    samples.append(
                        (
                            time.perf_counter() - started,
                            memory_mib(pid, "VmRSS"),
                            tree_cpu_seconds(pid) - cpu_before,
                        )
                    )

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            status, answer = _post(base, body)
            wall = time.perf_counter() - started
            done.set()
            sampler.join()
            cpu = tree_cpu_seconds(pid) - cpu_before
            peak = memory_mib(pid, "VmHWM")
            over_status, over_message = _post_declared_only(base, limit + 1)
    if status != 200:
        raise RuntimeError(f"the bundle was refused: {status} {answer[:500]!r}")
    body_mib = len(body) / 2**20
    return {
        "body_mib": round(body_mib, 1),
        "entries": entries,
        "default_limit_mib": round(limit / 2**20),
        "status": status,
        "wall_seconds": round(wall, 1),
        "server_cpu_seconds": round(cpu, 1),
        "resources_per_s_per_core": round(entries / cpu) if cpu else None,
        "idle_rss_mib": round(idle),
        "peak_rss_mib": round(max(peak, idle_peak)),
        "peak_growth_mib": round(peak - idle),
        "peak_over_body": round(peak / body_mib, 2),
        "growth_over_body": round((peak - idle) / body_mib, 2),
        "rss_timeline": _timeline(samples),
        "over_limit_status": over_status,
        "over_limit_message": over_message,
        "load_average": round(os.getloadavg()[0], 1),
    }


def _timeline(samples: list[tuple[float, float, float]], points: int = 12) -> str:
    """A few (seconds: RSS MiB / CPU s) points of the run, evenly spaced."""
    if not samples:
        return ""
    step = max(1, len(samples) // points)
    shown = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
    return ", ".join(f"{t:.0f}s:{rss:.0f}M/{cpu:.0f}c" for t, rss, cpu in shown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mb", type=float, default=100)
    parser.add_argument("--entries", type=int, default=40_000)
    parser.add_argument("--keep", help="also write the generated bundle to this file")
    args = parser.parse_args()
    result = figures(args.mb, args.entries, args.keep)
    width = max(len(k) for k in result)
    print("big_bundle (wall time on a shared, loaded machine; CPU and RSS from /proc)")
    for key, value in result.items():
        print(f"  {key:<{width}}  {value}")


if __name__ == "__main__":
    main()
