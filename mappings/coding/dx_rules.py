"""The diagnosis convention rule table (``mappings/data/diagnosis-rules.csv``).

Each row is one reviewed rule with its source (ICD-10-CM Official Guidelines section or
tabular note); ``dx_conventions`` applies them. Codes are matched by prefix, so a row
names a category (``N18``) or a subcategory (``R06.0``) the way the tabular does.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data" / "diagnosis-rules.csv"


def _alternatives(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split("|") if p.strip())


@dataclass(frozen=True, slots=True)
class DxRule:
    rule: str
    kind: str  # combine | integral | additional | first | weight | history
    base: tuple[str, ...]
    groups: tuple[tuple[str, ...], ...]  # "with": every group must be matched
    drop: tuple[str, ...]
    result: str
    replace_base: bool
    source: str

    def base_of(self, code: str) -> bool:
        return code.startswith(self.base)


@dataclass(slots=True)
class DxRules:
    rules: list[DxRule]
    header: str
    by_kind: dict[str, list[DxRule]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for r in self.rules:
            self.by_kind.setdefault(r.kind, []).append(r)

    def of(self, kind: str) -> list[DxRule]:
        return self.by_kind.get(kind, [])

    def versions(self) -> dict[str, str]:
        m = re.search(r"version ([\w.\-]+)", self.header)
        return {DATA.name: m.group(1) if m else "unversioned"}


def load_rules(path: Path = DATA) -> DxRules:
    lines = path.read_text(encoding="utf-8").splitlines()
    header = next((ln[1:].strip() for ln in lines if ln.startswith("#")), "")
    body = [ln for ln in lines if ln.strip() and not ln.startswith("#")]
    rules = []
    for r in csv.DictReader(body):
        rules.append(
            DxRule(
                rule=r["rule"],
                kind=r["kind"],
                base=_alternatives(r["base"]),
                groups=tuple(_alternatives(g) for g in r["with"].split()),
                drop=_alternatives(r["drop"]),
                result=r["result"].strip(),
                replace_base=r["replace_base"].strip() == "yes",
                source=r["source"].strip(),
            )
        )
    return DxRules(rules, header)


@lru_cache(maxsize=1)
def dx_rules() -> DxRules:
    return load_rules()
