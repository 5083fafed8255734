"""Payer kind (Medicare, Medicaid, commercial, self-pay) from the focal Coverage.

Every payer-specific rule (prolonged services, Medicare preventive codes, screening
modifiers, vaccine administration codes) reads one row of ``payer-rules.csv`` for the
kind ``payer-kinds.csv`` gives the claim's first active Coverage (``Coverage.type``
coding, else a word of the payor's name). Without an active Coverage the claim is
self-pay; a Coverage nothing matches is commercial, said in an information issue.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent.parent / "data"


@dataclass(frozen=True, slots=True)
class PayerRule:
    kind: str
    prolonged_code: str
    prolonged_new_base: int
    prolonged_established_base: int
    preventive: str  # cpt | medicare
    screening_modifier: str
    vaccine_admin: str  # cpt | medicare


@dataclass(frozen=True, slots=True)
class PayerTables:
    codes: dict[str, list[tuple[str, str]]]  # system -> [(prefix, kind)], longest first
    words: list[tuple[str, str]]
    rules: dict[str, PayerRule]
    versions: dict[str, str]


def _read(path: Path) -> tuple[list[dict[str, str]], str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    header = next((ln[1:].strip() for ln in lines if ln.startswith("#")), "")
    m = re.search(r"version ([\w.\-]+)", header)
    body = [ln for ln in lines if ln.strip() and not ln.startswith("#")]
    return list(csv.DictReader(body)), m.group(1) if m else "unversioned"


@lru_cache(maxsize=1)
def payer_tables() -> PayerTables:
    kinds, v1 = _read(DATA / "payer-kinds.csv")
    rules, v2 = _read(DATA / "payer-rules.csv")
    codes: dict[str, list[tuple[str, str]]] = {}
    words = []
    for r in kinds:
        if r["match"] == "code":
            codes.setdefault(r["system"], []).append((r["value"], r["kind"]))
        else:
            words.append((r["value"], r["kind"]))
    for rows in codes.values():
        rows.sort(key=lambda x: -len(x[0]))
    table = {
        r["kind"]: PayerRule(
            r["kind"],
            r["prolonged_code"],
            int(r["prolonged_new_base"]),
            int(r["prolonged_established_base"]),
            r["preventive"],
            r["screening_modifier"],
            r["vaccine_admin"],
        )
        for r in rules
    }
    return PayerTables(codes, words, table, {"payer-kinds.csv": v1, "payer-rules.csv": v2})


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text[:10]) if text else None
    except ValueError:
        return None


def active_coverages(coverages: list[dict[str, Any]], dos: date) -> list[dict[str, Any]]:
    """Coverages with status active and a period covering the date, by Coverage.order."""
    active = []
    for cov in coverages:
        if cov.get("status") != "active":
            continue
        period = cov.get("period") or {}
        start, end = _day(period.get("start")), _day(period.get("end"))
        if (start and start > dos) or (end and end < dos):
            continue
        active.append(cov)
    active.sort(key=lambda c: (c.get("order") or 999, str(c.get("id"))))
    return active


def coverage_kind(cov: dict[str, Any]) -> tuple[str, bool]:
    """(kind, matched): matched is False when the commercial default was assumed."""
    tables = payer_tables()
    concept = cov.get("type") or {}
    for coding in concept.get("coding") or []:
        prefixes = tables.codes.get(str(coding.get("system") or ""), [])
        code = str(coding.get("code") or "")
        for prefix, kind in prefixes:
            if code.startswith(prefix):
                return kind, True
    names = [concept.get("text") or ""]
    names += [(p or {}).get("display") or "" for p in cov.get("payor") or []]
    text = " ".join(names).lower()
    for word, kind in tables.words:
        if word in text:
            return kind, True
    return "commercial", False


def payer_rule(kind: str) -> PayerRule:
    return payer_tables().rules[kind]
