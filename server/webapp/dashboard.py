"""The billing office's numbers, computed from API searches and drawn as SVG charts.

* clean-claim rate by month of service: generated claims that never needed a coder
  (no review Task) over all generated claims;
* claims by status: in the queue, waiting on a documentation query, released (active,
  not adjudicated yet), adjudicated (by the ClaimResponse outcome);
* top edits holding claims in the queue (the open Tasks' ``businessStatus`` codes);
* denials by CARC: the adjustment reasons of denied lines and the errors of rejected
  claims in the ClaimResponses;
* dollars by payer and status: the claims' totals per payer of their focal Coverage.

Searches use ``_elements`` so that only the fields counted travel.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from mappings.coding.model import EDIT_SYSTEM
from mappings.coding.service import CLAIM_IDENTIFIER, TASK_CODE
from server.webapp import charts
from server.webapp.fhir import FhirClient

CARC = "https://x12.org/codes/claim-adjustment-reason-codes"
OPEN = {"requested", "received", "accepted", "ready", "in-progress"}
STATUS_SERIES = ["In queue", "Awaiting documentation", "Released", "Adjudicated"]


@dataclass(slots=True)
class Dashboard:
    charts: list[tuple[str, str]]  # (heading, svg)
    claims: int
    open_tasks: int
    clean_rate: float | None


def _status_of(
    claim: dict[str, Any], task: dict[str, Any] | None, response: dict[str, Any] | None
) -> str:
    if response is not None:
        return "Adjudicated"
    if task is not None and task.get("status") == "on-hold":
        return "Awaiting documentation"
    if claim.get("status") == "draft":
        return "In queue"
    return "Released"


async def build(fhir: FhirClient, payer_names: dict[str, str]) -> Dashboard:
    claims, tasks, responses, coverages = await asyncio.gather(
        fhir.search_all(
            "Claim",
            [
                ("identifier", f"{CLAIM_IDENTIFIER}|"),
                ("_elements", "status,billablePeriod,total,insurance"),
                ("_count", "1000"),
            ],
        ),
        fhir.search_all(
            "Task",
            [
                ("code", f"{TASK_CODE}|review-claim"),
                ("_elements", "status,focus,businessStatus"),
                ("_count", "1000"),
            ],
        ),
        fhir.search_all(
            "ClaimResponse", [("_elements", "request,outcome,item,error"), ("_count", "1000")]
        ),
        fhir.search_all("Coverage", [("_elements", "payor"), ("_count", "1000")]),
    )
    task_of = {str((t.get("focus") or {}).get("reference")): t for t in tasks}
    response_of = {str((r.get("request") or {}).get("reference")): r for r in responses}
    payer_of = {
        f"Coverage/{c['id']}": str(((c.get("payor") or [{}])[0]).get("reference") or "")
        for c in coverages
    }

    months: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # month -> [clean, all]
    statuses: Counter[str] = Counter()
    dollars: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for claim in claims:
        ref = f"Claim/{claim['id']}"
        task = task_of.get(ref)
        month = str((claim.get("billablePeriod") or {}).get("start") or "")[:7]
        if month:
            months[month][1] += 1
            if task is None:
                months[month][0] += 1
        status = _status_of(claim, task, response_of.get(ref))
        statuses[status] += 1
        insurance = claim.get("insurance") or [{}]
        coverage = str((insurance[0].get("coverage") or {}).get("reference") or "")
        payer_ref = payer_of.get(coverage, "")
        payer = (
            payer_names.get(payer_ref.split("/", 1)[-1], payer_ref.split("/", 1)[-1]) or "Self-pay"
        )
        dollars[payer][status] += float((claim.get("total") or {}).get("value") or 0.0)

    edits: Counter[str] = Counter()
    for t in tasks:
        if t.get("status") in OPEN:
            for c in (t.get("businessStatus") or {}).get("coding") or []:
                if c.get("system") == EDIT_SYSTEM:
                    edits[str(c.get("code"))] += 1

    denials: Counter[str] = Counter()
    for r in responses:
        for item in r.get("item") or []:
            for adj in item.get("adjudication") or []:
                category = {c.get("code") for c in (adj.get("category") or {}).get("coding") or []}
                if "adjustmentreason" not in category and "denialreason" not in category:
                    continue
                for c in (adj.get("reason") or {}).get("coding") or []:
                    if c.get("system") == CARC:
                        denials[f"CARC {c.get('code')}"] += 1
        for error in r.get("error") or []:
            for c in (error.get("code") or {}).get("coding") or []:
                if c.get("system") == CARC:
                    denials[f"CARC {c.get('code')}"] += 1

    points = [
        (month, 100.0 * clean / total) for month, (clean, total) in sorted(months.items()) if total
    ][-24:]
    all_claims = sum(total for _, total in months.values())
    clean_rate = 100.0 * sum(c for c, _ in months.values()) / all_claims if all_claims else None
    rows = sorted(dollars.items(), key=lambda kv: -sum(kv[1].values()))[:10]
    return Dashboard(
        charts=[
            (
                "Clean-claim rate by month of service",
                charts.line_chart("Clean-claim rate by month of service", points),
            ),
            (
                "Claims by status",
                charts.bar_chart(
                    "Claims by status", [(s, float(statuses.get(s, 0))) for s in STATUS_SERIES]
                ),
            ),
            (
                "Top edits holding claims",
                charts.bar_chart(
                    "Top edits holding claims", [(k, float(v)) for k, v in edits.most_common(10)]
                ),
            ),
            (
                "Denials by CARC",
                charts.bar_chart(
                    "Denials by CARC", [(k, float(v)) for k, v in denials.most_common(10)]
                ),
            ),
            (
                "Dollars by payer and status",
                charts.stacked_bars(
                    "Dollars by payer and status",
                    [(payer, dict(values)) for payer, values in rows],
                    STATUS_SERIES,
                    money=True,
                ),
            ),
        ],
        claims=len(claims),
        open_tasks=sum(1 for t in tasks if t.get("status") in OPEN),
        clean_rate=clean_rate,
    )
