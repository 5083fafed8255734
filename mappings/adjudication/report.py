"""Totals over stored EOBs: charged, allowed, paid, patient responsibility, denials.

Used by the Synthea end-to-end test and ``bench/adjudication_bench.py`` to report what a
population's claims came to.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from server.repository import Repository, RequestContext
from server.storage.port import SearchQuery

CARC = "https://x12.org/codes/claim-adjustment-reason-codes"


@dataclass
class Summary:
    eobs: int = 0
    lines: int = 0
    denied_lines: int = 0
    charged: Decimal = Decimal(0)
    allowed: Decimal = Decimal(0)
    paid: Decimal = Decimal(0)
    patient: Decimal = Decimal(0)
    denials: Counter[str] = field(default_factory=Counter)
    in_network: int = 0

    def add(self, eob: dict[str, Any]) -> None:
        if eob.get("status") != "active":
            return  # a replaced claim's EOB no longer counts
        self.eobs += 1
        totals = {
            t["category"]["coding"][0]["code"]: Decimal(str(t["amount"]["value"]))
            for t in eob.get("total") or []
            if "amount" in t
        }
        self.charged += totals.get("submitted", Decimal(0))
        self.allowed += totals.get("eligible", Decimal(0))
        self.paid += totals.get("benefit", Decimal(0))
        self.patient += totals.get("paidbypatient", Decimal(0))
        for item in eob.get("item") or []:
            self.lines += 1
            for entry in item.get("adjudication") or []:
                for coding in (entry.get("reason") or {}).get("coding") or []:
                    if coding.get("system") == CARC and coding.get("code") != "45":
                        self.denials[str(coding["code"])] += 1
                        self.denied_lines += 1

    def lines_of_text(self) -> list[str]:
        return [
            f"EOBs: {self.eobs}; lines: {self.lines}, denied: {self.denied_lines}",
            f"charged {self.charged:.2f}; allowed {self.allowed:.2f}; paid {self.paid:.2f};"
            f" patient responsibility {self.patient:.2f}",
            "denials by CARC: "
            + (", ".join(f"{k}: {v}" for k, v in sorted(self.denials.items())) or "none"),
        ]


async def summarize(repo: Repository, ctx: RequestContext) -> Summary:
    """Every current ExplanationOfBenefit in the store, summed."""
    summary = Summary()
    after = None
    while True:
        page = await repo.search(
            ctx, SearchQuery(("ExplanationOfBenefit",), None, count=200, after=after)
        )
        for version in page.versions:
            if version.body is not None:
                summary.add(orjson.loads(version.body))
        if not page.more or not page.positions:
            return summary
        after = page.positions[-1]
