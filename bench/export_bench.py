"""Bulk Data $export figures: resources/s exported and peak memory (prints, never pass/fail).

    .venv/bin/python -m bench.export_bench [--resources 100000] [--store URL] [--page-size 1000]

Loads synthetic patients with encounters, conditions, claims and EOBs (10 resources per
patient) straight through the repository (write-time index extraction included, no HTTP),
then runs export jobs with the real runner (``ExportService``: keyset pages through the
repository facade, NDJSON files, checkpoints in the store) and reports, per export, the
rate and the resident set size sampled every 10 ms: the baseline before the export and
the peak during it. The figure that matters for "bounded memory" is the peak minus the
baseline, which should not grow with the size of the export.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from server.bulk.request import ExportRequest
from server.bulk.service import ExportService
from server.config import Settings
from server.repository import Repository, RequestContext
from server.storage.factory import create_store

# The bench loads through the repository (no token: no Provenance, as with --auth off).
LOADER = RequestContext(base_url="http://bench/fhir", user="bench")


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PeakSampler:
    """Samples this process's RSS in a thread while a block runs."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mib())
            time.sleep(0.01)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib())


def resources(n: int) -> Iterator[dict[str, Any]]:
    """``n`` resources, 10 per patient, generated lazily (the bench holds none of them)."""
    for p in range(max(1, n // 10)):
        pid = f"pat{p}"
        ref = {"reference": f"Patient/{pid}"}
        yield {
            "resourceType": "Patient",
            "id": pid,
            "name": [{"family": f"Family{p % 977}", "given": ["Ada"]}],
            "gender": "female" if p % 2 else "male",
            "birthDate": f"{1940 + p % 60}-0{1 + p % 9}-1{p % 9}",
        }
        for e in range(3):
            yield {
                "resourceType": "Encounter",
                "id": f"enc{p}-{e}",
                "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                          "code": "AMB"},
                "subject": ref,
                "period": {"start": f"2025-0{1 + e}-1{e}T09:00:00Z",
                           "end": f"2025-0{1 + e}-1{e}T09:30:00Z"},
            }  # fmt: skip
            yield {
                "resourceType": "Condition",
                "id": f"cond{p}-{e}",
                "subject": ref,
                "encounter": {"reference": f"Encounter/enc{p}-{e}"},
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm",
                                     "code": "E11.9"}]},
            }  # fmt: skip
        for c in range(2):
            yield claim(pid, f"claim{p}-{c}")
        yield {
            "resourceType": "ExplanationOfBenefit",
            "id": f"eob{p}",
            "status": "active",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type",
                                 "code": "professional"}]},
            "use": "claim",
            "patient": ref,
            "created": "2026-11-02",
            "insurer": {"reference": "Organization/o1"},
            "provider": {"reference": "Organization/o1"},
            "outcome": "complete",
            "insurance": [{"focal": True, "coverage": {"reference": "Coverage/c1"}}],
            "claim": {"reference": f"Claim/claim{p}-0"},
        }  # fmt: skip


def claim(pid: str, cid: str) -> dict[str, Any]:
    return {
        "resourceType": "Claim",
        "id": cid,
        "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type",
                             "code": "professional"}]},
        "use": "claim",
        "patient": {"reference": f"Patient/{pid}"},
        "created": "2026-11-02",
        "provider": {"reference": "Organization/o1"},
        "priority": {"coding": [{"code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/c1"}}],
        "diagnosis": [{"sequence": 1, "diagnosisCodeableConcept": {"coding": [
            {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]}}],
        "item": [
            {
                "sequence": i + 1,
                "productOrService": {"coding": [{"system": "http://www.ama-assn.org/go/cpt",
                                                 "code": "99213"}]},
                "servicedDate": "2026-11-02",
                "unitPrice": {"value": 92.5, "currency": "USD"},
                "net": {"value": 92.5, "currency": "USD"},
            }
            for i in range(3)
        ],
    }  # fmt: skip


async def load(repo: Repository, n: int, batch: int = 500) -> tuple[int, float]:
    started = time.perf_counter()
    count = 0
    pending = []
    for resource in resources(n):
        pending.append(repo.new_version(resource["resourceType"], resource["id"], resource, 0)[0])
        if len(pending) >= batch:
            await repo.commit_planned(LOADER, pending)
            count += len(pending)
            pending = []
    if pending:
        await repo.commit_planned(LOADER, pending)
        count += len(pending)
    return count, time.perf_counter() - started


async def export(
    service: ExportService, label: str, request: ExportRequest, export_dir: Path
) -> None:
    ctx = RequestContext(base_url="http://bench/fhir")
    gc.collect()
    baseline = rss_mib()
    job_id = await service.kickoff(ctx, f"http://bench/fhir/{label}", request)
    started = time.perf_counter()
    with PeakSampler() as sampler:
        ran = await service._run_next()
    elapsed = time.perf_counter() - started
    assert ran
    answer = await service.status(ctx, job_id)
    assert answer.manifest is not None, "the export did not complete"
    total = sum(o["count"] for o in answer.manifest["output"])
    size = sum(p.stat().st_size for p in (export_dir / job_id).iterdir())
    print(
        f"{label:<42} {total:>8,} resources in {elapsed:6.1f} s = {total / elapsed:>8,.0f}/s;"
        f" {len(answer.manifest['output'])} files, {size / 2**20:,.0f} MiB;"
        f" RSS {baseline:,.0f} -> peak {sampler.peak:,.0f} MiB"
        f" (+{sampler.peak - baseline:,.0f})"
    )
    await service.cancel(ctx, job_id)  # removes the files


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resources", type=int, default=100_000)
    parser.add_argument("--store", help="store URL (default: a temporary SQLite file)")
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--file-mib", type=float, default=128.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store_url = args.store or f"sqlite:///{tmp}/bench.db"
        export_dir = Path(tmp) / "export"
        settings = Settings(
            store_url=store_url,
            export_dir=str(export_dir),
            export_file_max_bytes=int(args.file_mib * 2**20),
        )
        store = create_store(store_url)
        await store.open()
        try:
            repo = Repository(store)
            count, seconds = await load(repo, args.resources)
            print(
                f"loaded {count:,} resources in {seconds:.1f} s ({count / seconds:,.0f}/s)"
                f" into {store.info.kind}; page size {args.page_size}"
            )
            service = ExportService(settings, repo)
            service.page_size = args.page_size
            types = ("Patient", "Encounter", "Condition", "Claim", "ExplanationOfBenefit")
            await export(
                service, "$export (5 types)", ExportRequest("system", types=types), export_dir
            )
            await export(
                service,
                "$export?_type=Claim,ExplanationOfBenefit",
                ExportRequest("system", types=("Claim", "ExplanationOfBenefit")),
                export_dir,
            )
            await export(
                service,
                "Patient/$export (compartment)",
                ExportRequest("patient", types=types),
                export_dir,
            )
        finally:
            await store.close()


if __name__ == "__main__":
    asyncio.run(main())
