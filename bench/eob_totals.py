"""EOB totals per payer from a searchset Bundle on stdin (the README walk-through).

    curl -s -H "Authorization: Bearer $TOKEN" \\
      "$FHIR/ExplanationOfBenefit?_count=1000" | python -m bench.eob_totals

Sums each ExplanationOfBenefit's ``total`` by ``insurer``: submitted, allowed
(``eligible``), paid (``benefit``) and what the patient owes (``memberliability``).
Reads one page; a population with more than 1,000 EOBs needs ``bench.synthea_e2e``.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

COLUMNS = (("submitted", "submitted"), ("eligible", "allowed"), ("benefit", "paid"))
COLUMNS += (("memberliability", "patient"),)


def main() -> None:
    bundle = json.load(sys.stdin)
    rows: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for entry in bundle.get("entry", []):
        eob = entry.get("resource") or {}
        if eob.get("resourceType") != "ExplanationOfBenefit":
            continue
        row = rows[(eob.get("insurer") or {}).get("display") or "?"]
        row["EOBs"] += 1
        for total in eob.get("total", []):
            row[total["category"]["coding"][0]["code"]] += float(total["amount"]["value"])
    print(f"{'payer':<24} {'EOBs':>5} " + " ".join(f"{label:>10}" for _, label in COLUMNS))
    grand: dict[str, float] = defaultdict(float)
    for payer, row in sorted(rows.items(), key=lambda kv: -kv[1]["EOBs"]):
        print(
            f"{payer:<24} {int(row['EOBs']):5d} " + " ".join(f"{row[c]:10.2f}" for c, _ in COLUMNS)
        )
        for key, value in row.items():
            grand[key] += value
    print(
        f"{'total':<24} {int(grand['EOBs']):5d} "
        + " ".join(f"{grand[c]:10.2f}" for c, _ in COLUMNS)
    )


if __name__ == "__main__":
    main()
