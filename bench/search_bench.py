"""Search figures on a synthetic, Synthea-like data set (prints figures, never pass/fail).

    .venv/bin/python bench/search_bench.py [--resources 100000] [--store sqlite:///PATH]
        [--mongo mongodb://...] [--runs 200]

Generates patients with encounters, conditions, procedures and claims (about 1 + 3 + 3 +
1.5 + 1.5 per patient), loads them through the repository (write-time extraction
included), then times each benchmark query end to end through the search engine
(parse -> expression tree -> backend query -> page -> _include), reporting p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from server.repository import Repository, RequestContext
from server.search.extract import extract_index_values
from server.search.parse import parse_search
from server.storage.factory import create_store
from server.storage.port import SearchQuery, Store

FAMILIES = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Müller", "Öztürk", "Dubois",
]  # fmt: skip
GIVEN = ["Ada", "Bob", "Chloé", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivan", "Jo", "Kim", "Lea"]
SNOMED = [
    "44054006", "38341003", "195662009", "10509002", "444814009", "36971009", "65363002",
    "233604007", "40055000", "59621000", "73595000", "15777000", "162864005", "271737000",
]  # fmt: skip
CPT = ["99213", "99214", "99203", "93000", "36415", "85025", "80053", "71046", "G0439", "99395"]
SCT = "http://snomed.info/sct"

# The bench loads through the repository (no token: no Provenance, as with --auth off).
LOADER = RequestContext(base_url="http://bench/fhir", user="bench")


def _date(rng: random.Random, start_year: int = 2015, end_year: int = 2025) -> str:
    y = rng.randint(start_year, end_year)
    return f"{y}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def generate(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """About ``n`` resources: per patient 3 encounters, 3 conditions, 1.5 procedures/claims."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    patients = max(1, n // 10)
    for p in range(patients):
        pid = f"pat{p}"
        out.append(
            {
                "resourceType": "Patient",
                "id": pid,
                "identifier": [
                    {"system": "urn:oid:1.2.36.146.595.217.0.1", "value": f"MRN{p:07d}"}
                ],
                "name": [{"family": rng.choice(FAMILIES), "given": [rng.choice(GIVEN)]}],
                "gender": rng.choice(["male", "female"]),
                "birthDate": _date(rng, 1930, 2020),
                "address": [{"city": rng.choice(["Boston", "Salem", "Lowell"]), "state": "MA"}],
            }
        )
        for e in range(3):
            eid = f"enc{p}-{e}"
            day = _date(rng)
            out.append(
                {
                    "resourceType": "Encounter",
                    "id": eid,
                    "status": rng.choice(["finished"] * 8 + ["in-progress", "cancelled"]),
                    "class": {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                        "code": "AMB",
                    },
                    "type": [{"coding": [{"system": SCT, "code": "185349003"}]}],
                    "subject": {"reference": f"Patient/{pid}"},
                    "participant": [{"individual": {"reference": f"Practitioner/dr{p % 50}"}}],
                    "period": {"start": f"{day}T09:00:00Z", "end": f"{day}T09:30:00Z"},
                    "serviceProvider": {"reference": f"Organization/org{p % 20}"},
                }
            )
            out.append(
                {
                    "resourceType": "Condition",
                    "id": f"cond{p}-{e}",
                    "clinicalStatus": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                "code": "active",
                            }
                        ]
                    },
                    "code": {"coding": [{"system": SCT, "code": rng.choice(SNOMED)}]},
                    "subject": {"reference": f"Patient/{pid}"},
                    "encounter": {"reference": f"Encounter/{eid}"},
                    "onsetDateTime": f"{day}T09:00:00Z",
                    "recordedDate": day,
                }
            )
            if e < 2 and rng.random() < 0.75:
                out.append(
                    {
                        "resourceType": "Procedure",
                        "id": f"proc{p}-{e}",
                        "status": "completed",
                        "code": {
                            "coding": [
                                {
                                    "system": "http://www.ama-assn.org/go/cpt",
                                    "code": rng.choice(CPT),
                                }
                            ]
                        },
                        "subject": {"reference": f"Patient/{pid}"},
                        "encounter": {"reference": f"Encounter/{eid}"},
                        "performedDateTime": f"{day}T09:10:00Z",
                    }
                )
                out.append(
                    {
                        "resourceType": "Claim",
                        "id": f"claim{p}-{e}",
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
                        "patient": {"reference": f"Patient/{pid}"},
                        "created": f"{day}T12:00:00Z",
                        "provider": {"reference": f"Organization/org{p % 20}"},
                        "priority": {"coding": [{"code": "normal"}]},
                        "insurance": [
                            {
                                "sequence": 1,
                                "focal": True,
                                "coverage": {"reference": f"Coverage/cov{p}"},
                            }
                        ],
                        "item": [
                            {
                                "sequence": 1,
                                "productOrService": {
                                    "coding": [
                                        {
                                            "system": "http://www.ama-assn.org/go/cpt",
                                            "code": rng.choice(CPT),
                                        }
                                    ]
                                },
                                "encounter": [{"reference": f"Encounter/{eid}"}],
                            }
                        ],
                        "total": {"value": round(rng.uniform(50, 500), 2), "currency": "USD"},
                    }
                )
            if len(out) >= n:
                return out[:n]
    return out[:n]


async def load(repo: Repository, resources: list[dict[str, Any]], batch: int = 500) -> float:
    started = time.perf_counter()
    for i in range(0, len(resources), batch):
        writes = [
            repo.new_version(r["resourceType"], r["id"], r, expected=0)[0]
            for r in resources[i : i + batch]
        ]
        await repo.commit_planned(LOADER, writes)
    return time.perf_counter() - started


def queries(
    resources: list[dict[str, Any]], rng: random.Random
) -> dict[str, list[tuple[str, str]]]:
    """Each benchmark query as a function of a random patient."""
    patients = [r for r in resources if r["resourceType"] == "Patient"]
    p = rng.choice(patients)
    family = p["name"][0]["family"]
    return {
        "Patient?name=": ("Patient", f"name={family[:4]}"),
        "Encounter?patient=&date=ge&status=finished": (
            "Encounter",
            f"patient={p['id']}&date=ge2018-01-01&status=finished",
        ),
        "Claim?patient=&created=ge&_sort=-created": (
            "Claim",
            f"patient={p['id']}&created=ge2016-01-01&_sort=-created",
        ),
        "Condition?code=sct|...": ("Condition", f"code={SCT}|{rng.choice(SNOMED)}"),
        "Claim?patient.identifier= (chain)": (
            "Claim",
            f"patient.identifier=urn:oid:1.2.36.146.595.217.0.1|{p['identifier'][0]['value']}",
        ),
        "Encounter?patient=&_include=Encounter:patient": (
            "Encounter",
            f"patient={p['id']}&_include=Encounter:patient",
        ),
        "Patient?_has:Condition:subject:code= (reverse chain)": (
            "Patient",
            f"_has:Condition:subject:code={SCT}|{rng.choice(SNOMED)}&_count=20",
        ),
    }  # type: ignore[return-value]


async def run_query(repo: Repository, rtype: str, query: str) -> int:
    from urllib.parse import parse_qsl

    from server.search.parse import Include

    parsed = parse_search((rtype,), parse_qsl(query))
    ctx = RequestContext(base_url="http://bench/fhir")
    page = await repo.search(
        ctx,
        SearchQuery((rtype,), parsed.where, parsed.sort, parsed.count, total=False),
    )
    n = len(page.versions)
    specs: list[Include] = parsed.includes + parsed.revincludes
    keys = [(v.resource_type, v.id) for v in page.versions]
    for inc in specs:
        n += len(await repo.include(ctx, inc.spec, keys, 1000))
    return n


async def explain_mongo(store: Any, resources: list[dict[str, Any]]) -> None:
    """The query plan MongoDB chooses for the main find of each benchmark query."""
    from urllib.parse import parse_qsl

    from server.search.mongo_render import render_filter, resolve_joins, sort_spec

    coll = store._versions  # bench only: the collection MongoStore searches
    base = {"cur": True, "deleted": False}

    async def always(doc: Any) -> bool:
        return True

    print("query plans (winning plan, stages):")
    for name, (rtype, query) in queries(resources, random.Random(3)).items():
        parsed = parse_search((rtype,), parse_qsl(query))
        where = await resolve_joins(parsed.where, coll, base, always, rtype)
        filt = {"$and": [base, {"type": rtype}, render_filter(where)]}
        order = [(f, d) for f, d, _ in sort_spec(parsed.sort)]
        plan = await coll.find(filt).sort(order).limit(parsed.count + 1).explain()
        winning = plan.get("queryPlanner", {}).get("winningPlan") or plan.get("queryPlanner")
        print(f"  {name}: {_stages(winning)}")


def _stages(plan: Any) -> str:
    if isinstance(plan, dict):
        own = plan.get("stage")
        index = plan.get("indexName")
        inner = [_stages(plan[k]) for k in ("inputStage", "queryPlan") if k in plan]
        inner += [_stages(p) for p in plan.get("inputStages", [])]
        text = f"{own}({index})" if index else (own or "")
        return " <- ".join([t for t in [text, *inner] if t]) or str(plan)[:200]
    return str(plan)[:200]


async def bench_store(
    store: Store, resources: list[dict[str, Any]], runs: int, explain: bool = False
) -> None:
    await store.open()
    repo = Repository(store)
    try:
        print(f"\n== {store.info.kind} ({store.info.location}) ==")
        seconds = await load(repo, resources)
        rate = len(resources) / seconds
        print(f"load: {len(resources)} resources in {seconds:.1f} s ({rate:,.0f}/s)")
        rng = random.Random(11)
        names = list(queries(resources, rng))
        timings: dict[str, list[float]] = {name: [] for name in names}
        hits: dict[str, list[int]] = {name: [] for name in names}
        for _ in range(runs):
            for name, (rtype, query) in queries(resources, rng).items():
                started = time.perf_counter()
                hits[name].append(await run_query(repo, rtype, query))
                timings[name].append((time.perf_counter() - started) * 1000)
        print(f"{'query':56} {'p50 ms':>8} {'p99 ms':>8} {'hits':>6}")
        for name in names:
            ts = sorted(timings[name])
            p50 = statistics.median(ts)
            p99 = ts[min(len(ts) - 1, int(len(ts) * 0.99))]
            print(f"{name:56} {p50:8.2f} {p99:8.2f} {statistics.mean(hits[name]):6.1f}")
        if explain:
            await explain_mongo(store, resources)
    finally:
        await store.close()


def bench_extraction(resources: list[dict[str, Any]]) -> None:
    sample = resources[:5000]
    started = time.perf_counter()
    for r in sample:
        extract_index_values(r, "2026-01-01T00:00:00.000000Z")
    per = (time.perf_counter() - started) / len(sample) * 1e6
    print(
        f"extraction (compiled FHIRPath subset): {per:.0f} µs per resource (mean of {len(sample)})"
    )
    try:
        import fhirpathpy  # type: ignore[import-untyped]
    except ImportError:
        return
    from server.search.registry import registry

    subset = sample[:300]
    compiled: dict[str, Any] = {}
    failures: set[str] = set()
    started = time.perf_counter()
    for r in subset:
        for p in registry().params(r["resourceType"]).values():
            if not p.expression or p.evaluate is None:
                continue
            if p.expression not in compiled:
                compiled[p.expression] = fhirpathpy.compile(p.expression)
            try:
                compiled[p.expression](r)
            except Exception as exc:  # e.g. resolve() is not implemented without a model
                failures.add(str(exc)[:40])
    per_fp = (time.perf_counter() - started) / len(subset) * 1e6
    started = time.perf_counter()
    for r in subset:
        for p in registry().params(r["resourceType"]).values():
            if p.expression and p.evaluate is not None:
                p.evaluate(r)
    per_own = (time.perf_counter() - started) / len(subset) * 1e6
    print(
        f"FHIRPath evaluation only: compiled subset {per_own:.0f} µs, fhirpathpy {per_fp:.0f} µs"
        f" per resource (fhirpathpy failures: {sorted(failures) or 'none'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=100_000)
    parser.add_argument("--store", default=None, help="sqlite:///PATH (default: a temp file)")
    parser.add_argument("--mongo", default=None, help="also run on this MongoDB URL")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument(
        "--mongo-resources", type=int, default=None, help="data set size on MongoDB (default: same)"
    )
    parser.add_argument("--mongo-runs", type=int, default=None)
    args = parser.parse_args()
    resources = generate(args.resources)
    counts: dict[str, int] = {}
    for r in resources:
        counts[r["resourceType"]] = counts.get(r["resourceType"], 0) + 1
    print(f"data set: {len(resources)} resources {counts}")
    bench_extraction(resources)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.store or f"sqlite:///{Path(tmp) / 'bench.db'}"
        asyncio.run(bench_store(create_store(url), resources, args.runs))
    if args.mongo:
        size = args.mongo_resources or args.resources
        asyncio.run(
            bench_store(
                create_store(args.mongo), generate(size), args.mongo_runs or args.runs, explain=True
            )
        )


if __name__ == "__main__":
    main()
