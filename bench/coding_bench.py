"""Coding engine speed: median claim generation per encounter, in process.

    python -m bench.coding_bench [--dir DIR] [--since 2024-10-01] [--repeat 3]

Builds each Encounter's inputs (Patient, Conditions, Procedures, earlier Encounters) from
Synthea patient bundles in memory (default: tests/fixtures/synthea), then times
``code_encounter`` alone (terminology warm). Prints p50/p90/p99 and clean %, never
pass/fail. For the end-to-end ingest-to-claim rate see ``bench/synthea_run.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from mappings.coding.engine import code_encounter
from mappings.coding.model import SourceData
from mappings.coding.tables import rule_tables
from terminology.service import get_service

ROOT = Path(__file__).resolve().parent.parent


def practitioner_directory(directory: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Synthea's practitionerInformation bundles: (Practitioners, PractitionerRoles)."""
    people: list[dict[str, Any]] = []
    roles: list[dict[str, Any]] = []
    for path in sorted(directory.glob("practitionerInformation*.json")):
        for e in orjson.loads(path.read_bytes()).get("entry", []):
            res = e.get("resource") or {}
            res.setdefault("id", str(e.get("fullUrl", "")).rsplit(":", 1)[-1])
            if res.get("resourceType") == "Practitioner":
                people.append(res)
            elif res.get("resourceType") == "PractitionerRole":
                roles.append(res)
    return people, roles


def _resolve_participants(enc: dict[str, Any], by_identifier: dict[str, str]) -> dict[str, Any]:
    """Practitioner?identifier=sys|value -> Practitioner/id, as the server resolves it."""
    parts = []
    for part in enc.get("participant") or []:
        ref = (part.get("individual") or {}).get("reference") or ""
        if ref.startswith("Practitioner?identifier="):
            found = by_identifier.get(ref.split("=", 1)[1])
            if found:
                part = {**part, "individual": {"reference": found}}
        parts.append(part)
    return {**enc, "participant": parts}


def sources_from_bundle(
    bundle: dict[str, Any],
    since: str,
    people: list[dict[str, Any]] | None = None,
    roles: list[dict[str, Any]] | None = None,
) -> list[SourceData]:
    by_identifier = {
        f"{i.get('system')}|{i.get('value')}": f"Practitioner/{p['id']}"
        for p in people or []
        for i in p.get("identifier") or []
    }
    by_url: dict[str, dict[str, Any]] = {}
    for e in bundle.get("entry", []):
        res = e.get("resource") or {}
        res.setdefault("id", str(e.get("fullUrl", "")).rsplit(":", 1)[-1])
        by_url[str(e.get("fullUrl"))] = res
    patient = next((r for r in by_url.values() if r.get("resourceType") == "Patient"), None)
    url_by_id = {
        str(r.get("id")): u for u, r in by_url.items() if r.get("resourceType") == "Encounter"
    }
    encounters = [
        _resolve_participants(r, by_identifier)
        for r in by_url.values()
        if r.get("resourceType") == "Encounter"
    ]
    encounters.sort(key=lambda r: r["period"]["start"])
    children: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for res in by_url.values():
        rtype = res.get("resourceType")
        if rtype in ("Condition", "Procedure"):
            ref = (res.get("encounter") or {}).get("reference", "")
            children.setdefault(ref, {"Condition": [], "Procedure": []})[rtype].append(res)
    out = []
    seen: list[tuple[str, str]] = []  # (start, organization) of earlier finished encounters
    for enc in encounters:
        url = url_by_id[str(enc.get("id"))]
        org = (enc.get("serviceProvider") or {}).get("reference", "")
        start = enc["period"]["start"]
        dos = date.fromisoformat(start[:10])
        three = dos.replace(year=dos.year - 3, day=min(dos.day, 28)).isoformat()
        established = any(o == org and three <= s[:10] < start[:10] for s, o in seen)
        seen.append((start, org))
        if start[:10] < since:
            continue
        kids = children.get(url, {"Condition": [], "Procedure": []})
        enc = {**enc, "subject": {"reference": f"Patient/{patient['id'] if patient else ''}"}}
        problems = [r for r in by_url.values() if r.get("resourceType") == "Condition"]
        # As the service gathers them: finished, within 3 years, at most 100.
        earlier = [e for e in encounters if three <= e["period"]["start"][:10] <= start[:10]]
        earlier = [e for e in earlier if e is not enc][-100:]
        out.append(
            SourceData(
                enc,
                patient,
                kids["Condition"],
                kids["Procedure"],
                [],
                established,
                problems,
                prior_encounters=earlier,  # new vs established as the service decides it
                roles=roles or [],
                practitioners=people or [],
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=str(ROOT / "tests" / "fixtures" / "synthea"))
    parser.add_argument("--since", default="2024-10-01")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--show", type=int, default=0, help="print N non-clean examples")
    args = parser.parse_args()
    t = get_service()
    t.preload()
    tables = rule_tables()
    sources: list[SourceData] = []
    people, roles = practitioner_directory(Path(args.dir))
    for path in sorted(Path(args.dir).glob("*.json")):
        if path.name.startswith(("hospitalInformation", "practitionerInformation")):
            continue
        bundle = orjson.loads(path.read_bytes())
        sources += sources_from_bundle(bundle, args.since, people, roles)
    if not sources:
        print(f"no encounters on or after {args.since} in {args.dir}")
        return
    for s in sources[:20]:  # warm the tables and caches
        code_encounter(s, t, tables)
    timings = []
    clean = 0
    errors: Counter[str] = Counter()
    shown = 0
    for _ in range(args.repeat):
        for s in sources:
            t0 = time.perf_counter()
            result = code_encounter(s, t, tables)
            timings.append((time.perf_counter() - t0) * 1000)
            if _ == 0:
                clean += result.clean
                for p in result.problems:
                    if p.severity == "error":
                        errors[p.code] += 1
                if not result.clean and shown < args.show:
                    shown += 1
                    print(
                        [
                            (p.code, p.message[:140])
                            for p in result.problems
                            if p.severity == "error"
                        ]
                    )
    timings.sort()
    q = statistics.quantiles(timings, n=100)
    print(f"encounters: {len(sources)} (on or after {args.since}), x{args.repeat} runs")
    print(
        f"claim generation in process: p50 {statistics.median(timings):.3f} ms, "
        f"p90 {q[89]:.3f} ms, p99 {q[98]:.3f} ms, max {timings[-1]:.3f} ms"
    )
    print(f"clean: {clean}/{len(sources)} = {100.0 * clean / len(sources):.1f} %")
    for code, n in errors.most_common(10):
        print(f"  error {code}: {n}")


if __name__ == "__main__":
    main()
