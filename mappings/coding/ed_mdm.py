"""Emergency department levels by medical decision making (CPT 2023 ED E/M guidelines).

99281-99285 are chosen by MDM: problems addressed, data reviewed and risk of management,
two of three elements deciding. FHIR data rarely shows the risk element; Billable derives
the level only when the disposition does (admission, transfer, death = high risk), with
the problem level from a reviewed diagnosis list and the data level from the unique tests
ordered (``ed-mdm.csv``). Otherwise ``em.py`` uses the documented proxy with a warning.
"""

from __future__ import annotations

import csv
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from mappings.coding.lines import Line

LEVELS = ("minimal", "low", "moderate", "high")


@lru_cache(maxsize=1)
def ed_mdm_table() -> tuple[list[tuple[tuple[str, ...], str]], set[str], dict[str, str], str]:
    path = Path(__file__).resolve().parent.parent / "data" / "ed-mdm.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    header = next((ln[1:].strip() for ln in lines if ln.startswith("#")), "")
    m = re.search(r"version ([\w.\-]+)", header)
    problems: list[tuple[tuple[str, ...], str]] = []
    high_risk: set[str] = set()
    codes: dict[str, str] = {}
    for r in csv.DictReader([ln for ln in lines if ln.strip() and not ln.startswith("#")]):
        if r["kind"] == "problem":
            problems.append((tuple(r["value"].split()), r["level"]))
        elif r["kind"] == "disposition":
            high_risk |= set(r["value"].split())
        else:
            codes[r["value"]] = r["level"]
    return problems, high_risk, codes, m.group(1) if m else "unversioned"


def _is_test(code: str) -> bool:
    """A unique test for the MDM data element: imaging, laboratory, ECG."""
    if not code.isdigit():
        return False
    n = int(code)
    return 70010 <= n <= 89398 or n in (93000, 93005, 93010, 93040, 93042)


def ed_mdm(
    encounter: dict[str, Any], dx_codes: list[str], proc_lines: list[Line]
) -> tuple[str, str] | None:
    """(ED code, why) when the MDM can be derived: the risk element is known only from a
    high-risk disposition (admission, transfer, death); the level is then the second
    highest of problems, data and risk. None: fall back to the documented proxy."""
    problems, high_risk, codes, _ = ed_mdm_table()
    disposition = {
        str(c.get("code"))
        for c in ((encounter.get("hospitalization") or {}).get("dischargeDisposition") or {}).get(
            "coding"
        )
        or []
    }
    if not disposition & high_risk:
        return None
    problem = "minimal"
    for code in dx_codes:
        level = "low" if not code.startswith("Z") else "minimal"
        for prefixes, lvl in problems:
            if code.startswith(prefixes) and LEVELS.index(lvl) > LEVELS.index(level):
                level = lvl
        if LEVELS.index(level) > LEVELS.index(problem):
            problem = level
    tests = len({ln.code for ln in proc_lines if _is_test(ln.code)})
    data = "moderate" if tests >= 3 else ("low" if tests == 2 else "minimal")
    ranked = sorted([problem, data, "high"], key=LEVELS.index, reverse=True)
    mdm = ranked[1]
    why = (
        f"problems {problem}, data {data} ({tests} unique tests), risk high (disposition"
        f" {', '.join(sorted(disposition))}): MDM {mdm}"
    )
    return codes[mdm], why
