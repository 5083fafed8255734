"""``billable feed synthea IN OUT``: a Synthea population as a hospital's feed.

Synthea exports each patient's history as a transaction Bundle with its own Claims and
ExplanationOfBenefits, and no Coverage. A hospital's EHR sends the opposite: the
clinical record and the patient's insurance, never a payer's claims. This module turns
the first into the second, one file at a time:

* the payer of each encounter is read from Synthea's Claim for it
  (``Claim.insurance[0].coverage.display``: "Medicare", "Medicaid", "Dual Eligible", a
  commercial insurer, or ``NO_INSURANCE``);
* consecutive days billed to the same payer become one ``Coverage`` (status active,
  typed with the Source of Payment Typology code of ``data/synthea-payers.csv``), from
  the first encounter of the run to the day before the patient's next payer takes over,
  open-ended for the last run. Encounters billed to ``NO_INSURANCE`` get no Coverage:
  Billable codes them as self-pay;
* each payer is an ``Organization`` with a fixed id (``synthea-payer-medicare``...),
  written with ``PUT`` so that every patient and every re-run share one resource per
  payer; each Coverage's id is derived from (patient, payer, period start), so a second
  run writes the same resources again and a re-load creates no copies;
* Synthea's Claims and ExplanationOfBenefits are dropped, so that the only claims in
  the store are Billable's own, and so is its Provenance (server-written in Billable);
* Synthea's ``POST`` entries become ``PUT Type/{its uuid}`` (what ``billable load``
  does on its own, see ``server.bundles.loader.make_idempotent``), so that posting the
  same feed twice over HTTP creates no second patient either.

Hospital and practitioner bundles are copied as they are. The output loads with
``billable load OUT`` or one ``POST [base]`` per file.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from server.bundles.loader import make_idempotent

PAYER_TABLE = Path(__file__).with_name("data") / "synthea-payers.csv"
NO_INSURANCE = "NO_INSURANCE"
SOPT = "https://nahdo.org/sopt"
PAYER_IDENTIFIER = "https://billable.dev/fhir/synthea-payer"
MEMBER_IDENTIFIER = "https://billable.dev/fhir/synthea-member-id"
ORGANIZATION_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
SUBSCRIBER_RELATIONSHIP = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
# Synthea's own claims are dropped so that Billable's are the only ones; its Provenance
# too, because Provenance is server-written (issue 13: clients may only read it) and
# Billable records its own Provenance of every commit, naming the client that pushed it.
DROPPED = frozenset({"Claim", "ExplanationOfBenefit", "Provenance"})
# Namespace of the derived ids (uuid5): fixed, so the same input gives the same ids.
ID_NAMESPACE = uuid.UUID("6f1c1f0e-4d9b-5b8e-9a57-2f6d0c1e7b10")


@dataclass(frozen=True, slots=True)
class Payer:
    name: str
    synthea_id: str
    ownership: str
    sopt_code: str
    sopt_display: str
    kind: str

    @property
    def organization_id(self) -> str:
        return "synthea-payer-" + re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")

    @property
    def full_url(self) -> str:
        return f"urn:uuid:{uuid.uuid5(ID_NAMESPACE, 'payer|' + self.name)}"

    def organization(self) -> dict[str, Any]:
        government = self.ownership.lower() == "government"
        return {
            "resourceType": "Organization",
            "id": self.organization_id,
            "identifier": [{"system": PAYER_IDENTIFIER, "value": self.synthea_id}],
            "active": True,
            "type": [
                {
                    "coding": [
                        {
                            "system": ORGANIZATION_TYPE,
                            "code": "pay" if government else "ins",
                            "display": "Payer" if government else "Insurance Company",
                        }
                    ]
                }
            ],
            "name": self.name,
        }


@cache
def payer_table(path: Path = PAYER_TABLE) -> dict[str, Payer]:
    """Synthea payer name → its type; the shipped table (comment lines start with #)."""
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    return {row["name"]: Payer(**row) for row in csv.DictReader(lines)}


def unknown_payer(name: str) -> Payer:
    """A payer the table does not list: typed "other" (SOPT 9) and reported, not guessed."""
    return Payer(name, name, "unknown", "9", "MISCELLANEOUS/OTHER", "other")


@dataclass(slots=True)
class Span:
    """Days billed to one payer without another payer in between."""

    payer: str
    start: date
    last: date
    encounters: int = 0
    end: date | None = None  # the day before the next payer's first day; None: open


@dataclass(slots=True)
class FeedReport:
    files: int = 0
    patients: int = 0
    claims_dropped: int = 0
    eobs_dropped: int = 0
    coverages: int = 0
    # payer name → Synthea claims billed to it (NO_INSURANCE included): the payer mix.
    encounters_by_payer: Counter[str] = field(default_factory=Counter)
    coverages_by_payer: Counter[str] = field(default_factory=Counter)
    unknown_payers: set[str] = field(default_factory=set)
    skipped: list[str] = field(default_factory=list)


def _day(value: Any) -> date | None:
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def _resources(bundle: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict):
            yield resource


def billed_days(bundle: dict[str, Any]) -> dict[date, Counter[str]]:
    """Day of service → payer name → encounters, from Synthea's Claims.

    The day is the start of the claim's encounter (``Claim.item.encounter``), else the
    claim's ``billablePeriod.start`` (pharmacy claims name no encounter)."""
    encounter_day: dict[str, date] = {}
    for res in _resources(bundle):
        if res.get("resourceType") == "Encounter":
            day = _day((res.get("period") or {}).get("start"))
            if day is not None:
                encounter_day[f"urn:uuid:{res.get('id')}"] = day
                encounter_day[f"Encounter/{res.get('id')}"] = day
    days: dict[date, Counter[str]] = {}
    for res in _resources(bundle):
        if res.get("resourceType") != "Claim":
            continue
        insurance = res.get("insurance") or [{}]
        payer = (insurance[0].get("coverage") or {}).get("display")
        if not isinstance(payer, str) or not payer:
            continue
        refs = [
            e.get("reference")
            for item in res.get("item") or []
            for e in item.get("encounter") or []
        ]
        day = next((encounter_day[r] for r in refs if r in encounter_day), None)
        day = day or _day((res.get("billablePeriod") or {}).get("start"))
        if day is not None:
            days.setdefault(day, Counter())[payer] += 1
    return days


def payer_spans(days: dict[date, Counter[str]]) -> list[Span]:
    """Runs of days with the same payer, in date order; on a day with two payers the one
    that billed more wins (ties: the name first in alphabetical order, so runs repeat)."""
    spans: list[Span] = []
    for day in sorted(days):
        counts = days[day]
        payer = min(counts, key=lambda name: (-counts[name], name))
        if spans and spans[-1].payer == payer:
            spans[-1].last = day
            spans[-1].encounters += counts[payer]
            continue
        if spans:
            spans[-1].end = day - timedelta(days=1)
        spans.append(Span(payer, day, day, counts[payer]))
    return spans


def coverage(patient_id: str, patient_url: str, payer: Payer, span: Span) -> dict[str, Any]:
    """The Coverage of one span, shaped for Billable's coding and adjudication: status,
    period, beneficiary and payor are what they read (docs/adjudication.md); the type
    says which kind of payer it is; no ``class`` of type plan, so the default plan's
    benefits apply (Synthea's export names the payer, never the plan)."""
    cid = str(uuid.uuid5(ID_NAMESPACE, f"coverage|{patient_id}|{payer.name}|{span.start}"))
    period = {"start": span.start.isoformat()}
    if span.end is not None:
        period["end"] = span.end.isoformat()
    return {
        "resourceType": "Coverage",
        "id": cid,
        "identifier": [{"system": MEMBER_IDENTIFIER, "value": f"{payer.synthea_id}-{patient_id}"}],
        "status": "active",
        "type": {
            "coding": [{"system": SOPT, "code": payer.sopt_code, "display": payer.sopt_display}],
            "text": payer.name,
        },
        "subscriber": {"reference": patient_url},
        "subscriberId": f"{payer.synthea_id}-{patient_id}",
        "beneficiary": {"reference": patient_url},
        "relationship": {"coding": [{"system": SUBSCRIBER_RELATIONSHIP, "code": "self"}]},
        "period": period,
        "payor": [{"reference": payer.full_url, "display": payer.name}],
        "order": 1,
    }


def feed_bundle(bundle: dict[str, Any], report: FeedReport) -> dict[str, Any]:
    """One patient bundle as a hospital would send it (a new dict; ``bundle`` is kept)."""
    entries = [e for e in bundle.get("entry") or [] if isinstance(e, dict)]
    patient_entry = next(
        (e for e in entries if (e.get("resource") or {}).get("resourceType") == "Patient"), None
    )
    if patient_entry is None:
        return bundle  # reference data (hospitals, practitioners): nothing to change
    patient = patient_entry["resource"]
    patient_id = str(patient.get("id"))
    patient_url = str(patient_entry.get("fullUrl") or f"Patient/{patient_id}")
    report.patients += 1

    spans = payer_spans(billed_days(bundle))
    table = payer_table()
    added: list[dict[str, Any]] = []
    organizations: dict[str, Payer] = {}
    for span in spans:
        report.encounters_by_payer[span.payer] += span.encounters
        if span.payer == NO_INSURANCE:
            continue
        payer = table.get(span.payer)
        if payer is None:
            report.unknown_payers.add(span.payer)
            payer = unknown_payer(span.payer)
        organizations[payer.name] = payer
        resource = coverage(patient_id, patient_url, payer, span)
        added.append(
            {
                "fullUrl": f"urn:uuid:{resource['id']}",
                "resource": resource,
                "request": {"method": "PUT", "url": f"Coverage/{resource['id']}"},
            }
        )
        report.coverages += 1
        report.coverages_by_payer[payer.name] += 1
    payer_entries = [
        {
            "fullUrl": payer.full_url,
            "resource": payer.organization(),
            "request": {"method": "PUT", "url": f"Organization/{payer.organization_id}"},
        }
        for payer in organizations.values()
    ]

    kept: list[dict[str, Any]] = []
    for entry in entries:
        rtype = (entry.get("resource") or {}).get("resourceType")
        if rtype in DROPPED:
            report.claims_dropped += rtype == "Claim"
            report.eobs_dropped += rtype == "ExplanationOfBenefit"
            continue
        kept.append({**entry})  # make_idempotent rewrites entries: the input stays as it was
    at = 1 + next(i for i, e in enumerate(kept) if e["resource"] is patient)
    # Payers first (Coverage.payor refers to them), right after the Patient.
    fed = {**bundle, "entry": [*kept[:at], *payer_entries, *added, *kept[at:]]}
    make_idempotent(fed)
    return fed


def input_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.glob("*.json") if p.is_file())
        else:
            yield path


def feed_files(paths: Iterable[Path], out: Path, report: FeedReport | None = None) -> FeedReport:
    """Write each input bundle, fed, under ``out`` with the same file name."""
    report = report or FeedReport()
    out.mkdir(parents=True, exist_ok=True)
    for path in input_files(paths):
        try:
            bundle = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            report.skipped.append(f"{path}: {exc}")
            continue
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            report.skipped.append(f"{path}: not a Bundle")
            continue
        (out / path.name).write_bytes(orjson.dumps(feed_bundle(bundle, report)))
        report.files += 1
    return report


def summary(report: FeedReport) -> str:
    total = sum(report.encounters_by_payer.values()) or 1
    lines = [
        f"billable feed synthea: {report.files} files, {report.patients} patients,"
        f" {report.coverages} Coverages written; dropped {report.claims_dropped} Synthea"
        f" Claims and {report.eobs_dropped} ExplanationOfBenefits",
        "payer mix (Synthea's claims by payer, Coverages written):",
    ]
    for name, count in report.encounters_by_payer.most_common():
        label = "self-pay (NO_INSURANCE)" if name == NO_INSURANCE else name
        lines.append(
            f"  {label:<28} {count:7d}  {100.0 * count / total:5.1f} %"
            f"  {report.coverages_by_payer.get(name, 0):4d} Coverages"
        )
    for name in sorted(report.unknown_payers):
        lines.append(f"  note: payer {name!r} is not in {PAYER_TABLE.name}: typed SOPT 9 (other)")
    lines.extend(f"  skipped {reason}" for reason in report.skipped)
    return "\n".join(lines)


def add_feed_arguments(parser: argparse.ArgumentParser) -> None:
    sources = parser.add_subparsers(dest="source", required=True)
    synthea = sources.add_parser(
        "synthea",
        help="Synthea FHIR output → bundles with Coverage, without Synthea's claims",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    synthea.add_argument("input", type=Path, nargs="+", help="Synthea's fhir/ dir or files")
    synthea.add_argument("output", type=Path, help="directory for the fed bundles")


def feed_command(args: argparse.Namespace) -> int:
    paths: list[Path] = list(args.input)
    if not any(True for _ in input_files(paths)):
        print("billable feed: no .json files in the input", file=sys.stderr)
        return 2
    report = feed_files(paths, args.output)
    print(summary(report), file=sys.stderr)
    return 1 if report.skipped else 0
