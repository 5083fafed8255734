"""Coding report on Synthea bundles, in process: clean %, E/M levels, new vs established,
and a per-encounter summary to compare two engine versions.

    python -m bench.coding_report --dir DIR [--since 2024-10-01] [--out summary.json]
    python -m bench.coding_report --compare old.json new.json [--sample 20]

``--out`` writes {encounter id: {"dx": [...], "lines": [[code, modifiers, units]], "errors":
[...]}}; ``--compare`` prints how many claims changed and a sample of them. Figures only,
never pass/fail.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from bench.coding_bench import practitioner_directory, sources_from_bundle
from mappings.coding.engine import code_encounter
from mappings.coding.tables import rule_tables
from terminology.service import get_service

EM = {f"992{n:02d}" for n in range(2, 16)} | {f"9928{n}" for n in range(1, 6)}
EM |= {f"993{n:02d}" for n in range(41, 51)} | {f"993{n}" for n in range(81, 98)}
EM |= {"G0402", "G0438", "G0439"}


def summarize(directory: str, since: str) -> dict[str, dict[str, Any]]:
    t = get_service()
    tables = rule_tables()
    out: dict[str, dict[str, Any]] = {}
    people, roles = practitioner_directory(Path(directory))
    for path in sorted(Path(directory).glob("*.json")):
        if path.name.startswith(("hospitalInformation", "practitionerInformation")):
            continue
        bundle = orjson.loads(path.read_bytes())
        for src in sources_from_bundle(bundle, since, people, roles):
            result = code_encounter(src, t, tables)
            claim = result.claim
            out[str(src.encounter.get("id"))] = {
                "dx": [
                    d["diagnosisCodeableConcept"]["coding"][0]["code"]
                    for d in claim.get("diagnosis", [])
                ],
                "lines": [
                    [
                        i["productOrService"]["coding"][0]["code"],
                        [m["coding"][0]["code"] for m in i.get("modifier", [])],
                        i["quantity"]["value"],
                    ]
                    for i in claim.get("item", [])
                ],
                "errors": sorted({p.code for p in result.problems if p.severity == "error"}),
                "clean": result.clean,
            }
    return out


def report(summary: dict[str, dict[str, Any]]) -> None:
    n = len(summary)
    clean = sum(1 for s in summary.values() if s["clean"])
    print(f"encounters: {n}; clean {clean} = {100.0 * clean / max(n, 1):.1f} %")
    levels: Counter[str] = Counter()
    status: Counter[str] = Counter()
    for s in summary.values():
        for code, _mods, _units in s["lines"]:
            if code in EM:
                levels[code] += 1
                if code in ("99202", "99203", "99204", "99205", "99341", "99342", "99344"):
                    status["new"] += 1
                elif code.startswith(("9938", "9934", "9928")) or code == "99345":
                    status["new" if code.startswith("9938") else "other"] += 1
                else:
                    status["established"] += 1
    print("E/M codes:", ", ".join(f"{c} {k}" for c, k in sorted(levels.items())))
    print("new/established (problem and preventive office codes):", dict(status))
    errors = Counter(e for s in summary.values() for e in s["errors"])
    print("errors:", dict(errors.most_common(8)))


def compare(old_path: str, new_path: str, sample: int) -> None:
    old = orjson.loads(Path(old_path).read_bytes())
    new = orjson.loads(Path(new_path).read_bytes())
    common = sorted(set(old) & set(new))
    changed = [
        k for k in common if (old[k]["dx"], old[k]["lines"]) != (new[k]["dx"], new[k]["lines"])
    ]
    print(f"claims compared: {len(common)}; changed: {len(changed)}")
    why: Counter[str] = Counter()
    for k in changed:
        if old[k]["dx"] != new[k]["dx"]:
            why["diagnoses"] += 1
        if old[k]["lines"] != new[k]["lines"]:
            why["lines"] += 1
    print("what changed:", dict(why))
    random.seed(7)
    for k in random.sample(changed, min(sample, len(changed))):
        print(f"- {k}: dx {old[k]['dx']} -> {new[k]['dx']}")
        print(f"  lines {old[k]['lines']} -> {new[k]['lines']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir")
    parser.add_argument("--since", default="2024-10-01")
    parser.add_argument("--out")
    parser.add_argument("--compare", nargs=2)
    parser.add_argument("--sample", type=int, default=20)
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare, args.sample)
        return
    summary = summarize(args.dir, args.since)
    report(summary)
    if args.out:
        Path(args.out).write_bytes(orjson.dumps(summary))


if __name__ == "__main__":
    main()
