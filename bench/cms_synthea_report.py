"""What the CMS tables change on a Synthea population: clean %, top edits, totals.

    python -m bench.cms_synthea_report --dir OUT/fhir [--since 2024-10-01] [--json FILE]

Codes every encounter on or after ``--since`` in process (``code_encounter``, shipped
tables, national locality, the inputs ``bench.coding_bench`` builds from the bundles) and
prints: clean %, the top error and warning edits (claims with each), the claim total and
the total per line kind (E/M, procedures, labs, other), the lines priced from the PFS vs a
charge master, and the top codes by charged amount. ``--json`` writes the per-code totals so
two runs (e.g. before and after a table change, from two checkouts) can be compared with
``--compare OTHER.json``. Prints figures, never pass/fail.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import orjson

from bench.coding_bench import sources_from_bundle
from mappings.coding.engine import code_encounter
from mappings.coding.model import SourceData
from mappings.coding.tables import rule_tables
from terminology.service import get_service


def kind_of(code: str) -> str:
    if len(code) == 4 and code.isdigit():
        return "revenue code (room)"
    if code.startswith("99") and code[:5].isdigit() and 99202 <= int(code[:5]) <= 99499:
        return "E/M"
    if code[:1].isdigit() and code[:2] in ("80", "81", "82", "83", "84", "85", "86", "87", "88"):
        return "lab/pathology"
    if code[:1].isdigit() and "10000" <= code <= "69999":
        return "surgery"
    if code[:1].isdigit() and code[:1] == "7":
        return "radiology"
    if code[:1].isdigit():
        return "medicine/other CPT"
    return "HCPCS/other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--since", default="2024-10-01")
    parser.add_argument("--json", help="write per-code totals here")
    parser.add_argument("--compare", help="a --json file of another run to compare with")
    args = parser.parse_args()
    t = get_service()
    t.preload()
    tables = rule_tables()
    sources: list[SourceData] = []
    for path in sorted(Path(args.dir).glob("*.json")):
        if path.name.startswith(("hospitalInformation", "practitionerInformation")):
            continue
        sources += sources_from_bundle(orjson.loads(path.read_bytes()), args.since)
    clean = 0
    edits: Counter[tuple[str, str]] = Counter()
    by_kind: Counter[str] = Counter()
    by_code: Counter[str] = Counter()
    sources_of_price: Counter[str] = Counter()
    total = 0.0
    lines = 0
    for s in sources:
        result = code_encounter(s, t, tables)
        clean += result.clean
        for severity, code in {(p.severity, p.code) for p in result.problems}:
            if severity in ("error", "warning"):
                edits[(severity, code)] += 1
        from_master = {
            int(m.group(1))
            for p in result.problems
            if p.code in ("price-illustrative", "price-charge-master")
            and (m := re.search(r"item\[(\d+)\]", p.location))
        }
        for n, item in enumerate(result.claim.get("item", [])):
            code = item["productOrService"]["coding"][0]["code"]
            net = float(item["net"]["value"])
            total += net
            lines += 1
            by_kind[kind_of(code)] += net
            by_code[code] += net
            sources_of_price["charge master" if n in from_master else "PFS"] += 1
    n = len(sources)
    print(f"encounters on or after {args.since}: {n}; clean {clean} = {100 * clean / n:.1f} %")
    print("top edits (claims with each):")
    for (severity, code), count in edits.most_common(15):
        print(f"  {severity:8} {code:28} {count}")
    print(f"claim lines {lines}; total charged {total:,.2f} USD; lines priced by: "
          + ", ".join(f"{k} {v}" for k, v in sources_of_price.most_common()))  # fmt: skip
    for kind, amount in by_kind.most_common():
        print(f"  {kind:20} {amount:12,.2f}")
    print("top codes by amount:", ", ".join(f"{c} {a:,.0f}" for c, a in by_code.most_common(10)))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"total": total, "kinds": by_kind, "codes": by_code, "clean": clean, "n": n})
        )
    if args.compare:
        other = json.loads(Path(args.compare).read_text())
        print(
            f"compared with {args.compare}: total {other['total']:,.2f} -> {total:,.2f} "
            f"({100 * (total - other['total']) / other['total']:+.1f} %)"
        )
        for kind in sorted(set(other["kinds"]) | set(by_kind)):
            before, after = other["kinds"].get(kind, 0.0), by_kind.get(kind, 0.0)
            print(f"  {kind:20} {before:12,.2f} -> {after:12,.2f}")
        moved = sorted(
            set(other["codes"]) | set(by_code),
            key=lambda c: -abs(by_code.get(c, 0.0) - other["codes"].get(c, 0.0)),
        )[:10]
        print(
            "  largest changes by code: "
            + ", ".join(
                f"{c} {other['codes'].get(c, 0.0):,.0f}->{by_code.get(c, 0.0):,.0f}" for c in moved
            )
        )


if __name__ == "__main__":
    main()
