"""X12 speed and size: 837s built per second, 835 claim payments posted per second, and
the size of a 1,000-claim batch.

    python -m bench.x12_bench [--claims 1000] [--store sqlite:///PATH] [--population URL]

Writes ``--claims`` synthetic professional Claims (two lines each, with their Patient,
Coverage, payer, billing Organization and Practitioner) into a fresh store through the
repository, then times, in process:

* ``batch``: ``X12Out.batch`` over all of them (reads through the repository, builds,
  one interchange per payer) and ``record``: 837s per second, and the batch's bytes;
* ``build``: the builder alone on claims already gathered (no store);
* ``validate``: pyx12 over the whole batch (what the tests do);
* ``post``: ``import_x12`` of an 835 paying every claim (pyx12 validation, matching,
  ClaimResponse + PaymentReconciliation, one commit): claim payments per second, and the
  re-import that changes nothing.

Wall and CPU seconds (this process's utime+stime, as in /proc/self/stat) are both given:
on a shared machine the CPU figure is the one to compare. Figures, never pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

from server.config import Settings
from server.repository import Repository, system_context
from server.storage.factory import create_store
from server.x12 import reader
from server.x12.elements import NPI_SYSTEM
from server.x12.gather import gather
from server.x12.inbound import import_x12
from server.x12.loops_837 import Frequency, patient_control_number_of
from server.x12.outbound import X12Out

T = TypeVar("T")
CPT = "http://www.ama-assn.org/go/cpt"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SETTINGS = {
    "x12_sender_id": "BILLABLEBENCH",
    "x12_billing_name": "Bench Practice",
    "x12_billing_npi": "1234567893",
    "x12_billing_tax_id": "041234567",
    "x12_billing_address": "1 Bench St",
    "x12_billing_city": "Boston",
    "x12_billing_state": "MA",
    "x12_billing_zip": "021101234",
}


def cpu_seconds() -> float:
    """utime + stime of this process (the server is in process here): the counters of
    /proc/self/stat, read at nanosecond resolution (its clock ticks are 10 ms)."""
    return time.process_time()


async def timed(fn: Callable[[], Awaitable[T]]) -> tuple[T, float, float]:
    wall, cpu = time.perf_counter(), cpu_seconds()
    value = await fn()
    return value, time.perf_counter() - wall, cpu_seconds() - cpu


def resources(n: int) -> list[dict[str, Any]]:
    """The n-th claim and what it refers to (two payers alternate)."""
    payer = f"payer-{n % 2}"
    return [
        {
            "resourceType": "Patient",
            "id": f"p{n}",
            "name": [{"family": f"Bench{n}", "given": ["Pat"]}],
            "birthDate": "1980-01-01",
            "gender": "female" if n % 2 else "male",
            "address": [
                {"line": [f"{n} Main St"], "city": "Boston", "state": "MA", "postalCode": "02110"}
            ],
        },
        {
            "resourceType": "Coverage",
            "id": f"cov{n}",
            "status": "active",
            "subscriberId": f"MEM{n:06d}",
            "beneficiary": {"reference": f"Patient/p{n}"},
            "payor": [{"reference": f"Organization/{payer}"}],
            "type": {"coding": [{"system": "https://nahdo.org/sopt", "code": "5"}]},
        },
        {
            "resourceType": "Claim",
            "id": f"bench-claim-{n}",
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
            "patient": {"reference": f"Patient/p{n}"},
            "created": "2026-03-02",
            "provider": {"reference": "Organization/practice"},
            "priority": {"coding": [{"code": "normal"}]},
            "careTeam": [
                {"sequence": 1, "provider": {"reference": "Practitioner/dr"}, "responsible": True}
            ],
            "insurance": [
                {"sequence": 1, "focal": True, "coverage": {"reference": f"Coverage/cov{n}"}}
            ],
            "diagnosis": [
                {
                    "sequence": 1,
                    "diagnosisCodeableConcept": {"coding": [{"system": ICD, "code": "E11.9"}]},
                },
                {
                    "sequence": 2,
                    "diagnosisCodeableConcept": {"coding": [{"system": ICD, "code": "I10"}]},
                },
            ],
            "item": [
                {
                    "sequence": 1,
                    "careTeamSequence": [1],
                    "diagnosisSequence": [1, 2],
                    "productOrService": {"coding": [{"system": CPT, "code": "99214"}]},
                    "servicedDate": "2026-03-02",
                    "locationCodeableConcept": {"coding": [{"code": "11"}]},
                    "quantity": {"value": 1},
                    "net": {"value": 150.0, "currency": "USD"},
                },
                {
                    "sequence": 2,
                    "careTeamSequence": [1],
                    "diagnosisSequence": [1],
                    "productOrService": {"coding": [{"system": CPT, "code": "83036"}]},
                    "servicedDate": "2026-03-02",
                    "locationCodeableConcept": {"coding": [{"code": "11"}]},
                    "quantity": {"value": 1},
                    "net": {"value": 20.0, "currency": "USD"},
                },
            ],
            "total": {"value": 170.0, "currency": "USD"},
        },
    ]


SHARED = [
    {"resourceType": "Organization", "id": "practice", "name": "Bench Practice"},
    {
        "resourceType": "Organization",
        "id": "payer-0",
        "name": "Payer Zero",
        "identifier": [{"value": "P0"}],
    },
    {
        "resourceType": "Organization",
        "id": "payer-1",
        "name": "Payer One",
        "identifier": [{"value": "P1"}],
    },
    {
        "resourceType": "Practitioner",
        "id": "dr",
        "name": [{"family": "Bench"}],
        "identifier": [{"system": NPI_SYSTEM, "value": "1245319599"}],
    },
]


async def populate(repo: Repository, claims: int) -> None:
    ctx = system_context("x12-bench")
    batch: list[Any] = []
    everything = SHARED + [r for n in range(claims) for r in resources(n)]
    for resource in everything:
        write, _ = repo.plan_write(
            ctx, "create", resource["resourceType"], resource["id"], resource, 0
        )
        batch.append(write)
        if len(batch) >= 300:
            await repo.commit_planned(ctx, batch)
            batch = []
    if batch:
        await repo.commit_planned(ctx, batch)


def remittance(claims: int, pcns: list[str]) -> str:
    """One 835 paying every claim: 150 -> 120 (CO 45 10, PR 2 20), 20 -> 20."""
    segs = [
        "ISA*00*          *00*          *ZZ*BENCHPAYER     *ZZ*BILLABLEBENCH  *260315*1200*^"
        "*00501*000000900*0*T*:",
        "GS*HP*BENCHPAYER*BILLABLEBENCH*20260315*1200*900*X*005010X221A1",
        "ST*835*0001",
        f"BPR*I*{Decimal(140) * claims}*C*ACH*CCP*01*011000015*DA*123456*1123456789**01"
        "*011000028*DA*654321*20260315",
        "TRN*1*EFT900*1123456789",
        "DTM*405*20260314",
        "N1*PR*BENCH PAYER",
        "N3*1 PAYER WAY",
        "N4*HARTFORD*CT*06101",
        "PER*BL*PROVIDER SERVICES*TE*8005550100",
        "N1*PE*BENCH PRACTICE*XX*1234567893",
        "LX*1",
    ]
    for n, pcn in enumerate(pcns):
        segs += [
            f"CLP*{pcn}*1*170*140*20*12*ICN{n:08d}*11*1",
            f"NM1*QC*1*BENCH{n}*PAT****MI*MEM{n:06d}",
            "SVC*HC:99214*150*120**1",
            "DTM*472*20260302",
            "CAS*CO*45*10",
            "CAS*PR*2*20",
            "REF*6R*1",
            "AMT*B6*140",
            "SVC*HC:83036*20*20**1",
            "DTM*472*20260302",
            "REF*6R*2",
        ]
    segs.append(f"SE*{len(segs) - 1}*0001")
    segs += ["GE*1*900", "IEA*1*000000900"]
    return "~\n".join(segs) + "~\n"


async def run(claims: int, store_url: str | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        url = store_url or f"sqlite:///{tmp}/x12-bench.db"
        settings = Settings(store_url=url, **SETTINGS)
        repo = Repository(create_store(url))
        await repo.open()
        try:
            ctx = system_context("x12-bench")
            await populate(repo, claims)
            out = X12Out(repo, settings)
            result, batch_wall, batch_cpu = await timed(lambda: out.batch(ctx))
            await out.record(result)
            sent = sum(len(d.claims) for d in result.documents)
            size = sum(len(d.text.encode()) for d in result.documents)
            parts = [b.parts for d in result.documents for b in d.claims]

            async def build_all() -> int:
                for p in parts:
                    out.build_parts(p, Frequency())
                return len(parts)

            _, build_wall, build_cpu = await timed(build_all)

            async def validate_all() -> int:
                return sum(len(reader.validate(d.text)) for d in result.documents)

            problems, validate_wall, validate_cpu = await timed(validate_all)
            pcns = [patient_control_number_of(p.claim_id) for p in parts]
            era = remittance(len(pcns), pcns)
            posted, post_wall, post_cpu = await timed(lambda: import_x12(repo, ctx, era))
            _, again_wall, again_cpu = await timed(lambda: import_x12(repo, ctx, era))
            assert await gather(repo, ctx, parts[0].claim_id)  # the store still answers
        finally:
            await repo.close()
    return {
        "claims": claims,
        "claims_sent": sent,
        "batch_files": len(result.documents),
        "batch_bytes": size,
        "bytes_per_claim": round(size / max(sent, 1)),
        "837_per_s_batch_wall": round(sent / batch_wall, 1),
        "837_per_s_batch_cpu": round(sent / max(batch_cpu, 1e-9), 1),
        "837_per_s_build_cpu": round(len(parts) / max(build_cpu, 1e-9), 1),
        "pyx12_validate_s_wall": round(validate_wall, 2),
        "pyx12_validate_s_cpu": round(validate_cpu, 2),
        "pyx12_problems": problems,
        "835_claims_posted": posted.posting.claims,
        "835_claims_per_s_wall": round(posted.posting.claims / post_wall, 1),
        "835_claims_per_s_cpu": round(posted.posting.claims / max(post_cpu, 1e-9), 1),
        "835_resources_written": posted.written,
        "835_reimport_s_wall": round(again_wall, 2),
        "835_reimport_s_cpu": round(again_cpu, 2),
    }


async def population(store_url: str) -> dict[str, object]:
    """The batch an existing store (e.g. a loaded, coded Synthea population) would send,
    validated by pyx12; nothing is recorded as sent."""
    from collections import Counter

    repo = Repository(create_store(store_url))
    await repo.open()
    try:
        out = X12Out(repo, Settings(store_url=store_url, **SETTINGS))
        result, wall, cpu = await timed(lambda: out.batch(system_context("x12-bench")))
    finally:
        await repo.close()
    sent = sum(len(d.claims) for d in result.documents)
    missing = Counter(f"{m.loop} {m.segment}{m.element}" for r in result.refused for m in r.missing)
    problems = sum(len(reader.validate(d.text)) for d in result.documents)
    return {
        "population_claims_sent": sent,
        "population_files": len(result.documents),
        "population_pyx12_problems": problems,
        "population_refused": len(result.refused),
        "population_refused_by_element": dict(missing.most_common(5)),
        "population_not_billable": len(result.not_billable),
        "population_837_per_s_cpu": round(sent / max(cpu, 1e-9), 1),
        "population_batch_s_wall": round(wall, 1),
    }


def figures(**options: Any) -> dict[str, object]:
    """The headline numbers (``claims``: batch size, default 1,000; ``store``: a store
    URL, default a fresh SQLite file; ``population``: also check the batch of an existing
    store, e.g. a loaded Synthea population)."""
    numbers = asyncio.run(run(int(options.get("claims", 1000)), options.get("store")))
    if options.get("population"):
        numbers |= asyncio.run(population(str(options["population"])))
    return numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--claims", type=int, default=1000)
    parser.add_argument("--store", help="store URL (default: a fresh SQLite file)")
    parser.add_argument(
        "--population", help="also validate the batch of this existing store (not recorded)"
    )
    args = parser.parse_args()
    numbers = figures(claims=args.claims, store=args.store, population=args.population)
    width = max(len(k) for k in numbers)
    print("x12_bench (wall figures on a shared, loaded machine; compare CPU)")
    for key, value in numbers.items():
        print(f"  {key:<{width}}  {value}")


if __name__ == "__main__":
    main()
