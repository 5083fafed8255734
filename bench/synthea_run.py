"""Synthea end to end: generate, load (auto coding on), and report on the claims.

    python -m bench.synthea_run [--patients 100] [--seed 7] [--dir OUT] [--store URL]

Generates a population with ``bench/synthea.sh N SEED OUT`` (unless OUT/fhir already
holds one), removes Synthea's own Claim and ExplanationOfBenefit resources from each
patient bundle, loads everything with the bundle loader into a fresh store with the
automatic coding trigger on, waits for the claim queue to drain, and prints: encounters,
claims generated, % clean, the reasons of the non-clean ones, top unmapped codes, top
edits, and the ingest-to-claim rate. Prints figures, never pass/fail.

Encounters are reported in two groups: those whose date of service is covered by the
loaded code sets (ICD-10-CM FY2025 starts 2024-10-01) and older ones, which cannot be coded
without the code sets of their year (each gets a draft claim saying so).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import orjson

from mappings.coding.model import CodingResult
from mappings.coding.service import ClaimService, system_context
from server.bundles.loader import Loader
from server.repository import Repository
from server.storage.factory import create_store
from terminology.service import get_service

WINDOW_START = "2024-10-01"
ROOT = Path(__file__).resolve().parent.parent
DROP = ("Claim", "ExplanationOfBenefit")


def generate(n: int, seed: int, out: Path) -> None:
    if (out / "fhir").is_dir() and any((out / "fhir").glob("*.json")):
        print(f"using the population in {out}/fhir", file=sys.stderr)
        return
    subprocess.run(
        ["bash", str(ROOT / "bench" / "synthea.sh"), str(n), str(seed), str(out)], check=True
    )


def strip_claims(src: Path, dst: Path) -> tuple[int, int]:
    """Copy bundles without Synthea's Claims/EOBs; (files, encounters)."""
    dst.mkdir(parents=True, exist_ok=True)
    files = encounters = 0
    for path in sorted(src.glob("*.json")):
        bundle = orjson.loads(path.read_bytes())
        dropped = {
            e.get("fullUrl")
            for e in bundle.get("entry", [])
            if e.get("resource", {}).get("resourceType") in DROP
        }
        kept = []
        for e in bundle.get("entry", []):
            res = e.get("resource", {})
            if res.get("resourceType") in DROP:
                continue
            if res.get("resourceType") == "Provenance":
                res["target"] = [
                    t for t in res.get("target", []) if t.get("reference") not in dropped
                ]
                if not res["target"]:
                    continue
            if res.get("resourceType") == "Encounter":
                encounters += 1
            kept.append(e)
        bundle["entry"] = kept
        (dst / path.name).write_bytes(orjson.dumps(bundle))
        files += 1
    return files, encounters


async def run(args: argparse.Namespace) -> None:
    out = Path(args.dir)
    generate(args.patients, args.seed, out)
    work = Path(tempfile.mkdtemp(prefix="billable-synthea-"))
    files, n_enc = strip_claims(out / "fhir", work / "bundles")
    store_url = args.store or f"sqlite:///{work / 'billable.db'}"
    store = create_store(store_url)
    await store.open()
    get_service().preload()
    repo = Repository(store)
    service = ClaimService(repo, auto=True)
    results: dict[str, CodingResult] = {}
    service.observers.append(lambda eid, r: results.__setitem__(eid, r))
    ctx = system_context()
    t0 = time.perf_counter()
    stats = await Loader(repo, ctx, jobs=2).load(sorted((work / "bundles").glob("*.json")))
    t_load = time.perf_counter() - t0
    await service.drain()
    t_all = time.perf_counter() - t0
    await store.close()

    in_window: dict[str, CodingResult] = {}
    older: dict[str, CodingResult] = {}
    for eid, r in results.items():
        start = str((r.claim.get("billablePeriod") or {}).get("start") or "")[:10]
        (in_window if start >= WINDOW_START else older)[eid] = r

    def describe(group: dict[str, CodingResult], title: str) -> None:
        clean = sum(1 for r in group.values() if r.clean)
        pct = 100.0 * clean / len(group) if group else 0.0
        print(f"\n## {title}: {len(group)} claims, {clean} clean ({pct:.1f} %)")
        reasons: Counter[str] = Counter()
        edits: Counter[str] = Counter()
        unmapped: Counter[str] = Counter()
        for r in group.values():
            errors = sorted({p.code for p in r.problems if p.severity == "error"})
            if errors:
                reasons[", ".join(errors)] += 1
            for p in r.problems:
                if p.severity in ("error", "warning"):
                    edits[f"{p.severity} {p.code}"] += 1
                if p.code == "unmapped":
                    m = re.search(r"SNOMED CT (\d+) \(([^)]*)\)", p.message)
                    unmapped[f"{m.group(1)} {m.group(2)}" if m else p.message[:60]] += 1
        print("non-clean claims by error codes:")
        for k, v in reasons.most_common(10):
            print(f"  {v:6d}  {k}")
        print("top edits (errors and warnings):")
        for k, v in edits.most_common(12):
            print(f"  {v:6d}  {k}")
        print("top unmapped codes:")
        for k, v in unmapped.most_common(10):
            print(f"  {v:6d}  {k}")
        examples = [r for r in group.values() if not r.clean][:3]
        for r in examples:
            first = next(p for p in r.problems if p.severity == "error")
            print(f"  e.g. {first.code}: {first.message[:150]}")

    print("# Synthea coding run")
    print(f"patients' bundle files: {files} (+ reference data); store {store_url}")
    print(f"encounters in the population: {n_enc}; load errors: {len(stats.errors)}")
    print(f"claims generated: {len(results)} (service failures: {len(service.failures)})")
    print(
        f"ingest {t_load:.1f} s; ingest + coding {t_all:.1f} s; "
        f"ingest-to-claim rate {len(results) / t_all:.1f} encounters/s"
    )
    if results:
        print(
            f"claim generation through the store (gather + code + commit, while loading):"
            f" mean {1000 * service.seconds / len(results):.1f} ms per encounter"
        )
    describe(in_window, f"encounters on or after {WINDOW_START} (code sets loaded)")
    describe(older, f"encounters before {WINDOW_START} (no code set of their year loaded)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", default="data/synthea-coding")
    parser.add_argument("--store", default=None)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
