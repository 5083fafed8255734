"""Immunizations: a completed ``Immunization`` becomes the vaccine product code and its
administration codes, with Z23 (encounter for immunization).

* Product: CVX -> CPT from ``immunizations.csv`` (a reviewed subset of CDC's CVX/CPT
  table; an unlisted CVX code is an error for review, never guessed).
* Administration (CPT 90460-90474 guidelines): under 19 with counselling by the physician
  (``Immunization.education`` present), 90460 per vaccine plus 90461 per additional
  component; otherwise one first administration (90471 injection, else 90473 oral or
  intranasal) and add-ons (90472 injection, 90474 oral/intranasal). Medicare: G0008
  (influenza), G0009 (pneumococcal), G0010 (hepatitis B) instead (Claims Processing Manual
  Ch. 18 sec. 10); other vaccines keep the CPT codes.
* Diagnosis: Z23 (ICD-10-CM Guidelines I.C.21.c.2); the lines point to it first.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from mappings.coding.lines import Line
from terminology import systems

DATA = Path(__file__).resolve().parent.parent / "data" / "immunizations.csv"
CVX = "http://hl7.org/fhir/sid/cvx"
CPT = systems.CPT
HCPCS = systems.HCPCS
Z23 = "Z23"


@dataclass(frozen=True, slots=True)
class Vaccine:
    cvx: str
    cpt: str
    description: str
    components: int
    route: str
    medicare_admin: str
    min_age: float
    max_age: float


@lru_cache(maxsize=1)
def vaccine_table() -> tuple[dict[str, list[Vaccine]], str]:
    lines = DATA.read_text(encoding="utf-8").splitlines()
    header = next((ln[1:].strip() for ln in lines if ln.startswith("#")), "")
    m = re.search(r"version ([\w.\-]+)", header)
    body = [ln for ln in lines if ln.strip() and not ln.startswith("#")]
    table: dict[str, list[Vaccine]] = {}
    for r in csv.DictReader(body):
        v = Vaccine(
            r["cvx"].lstrip("0") or "0",
            r["cpt"],
            r["own_description"],
            int(r["components"]),
            r["route"],
            r["medicare_admin"],
            float(r["min_age"]),
            float(r["max_age"]),
        )
        table.setdefault(v.cvx, []).append(v)
    return table, m.group(1) if m else "unversioned"


def known_codes() -> set[str]:
    table, _ = vaccine_table()
    codes = {v.cpt for rows in table.values() for v in rows}
    codes |= {v.medicare_admin for rows in table.values() for v in rows if v.medicare_admin}
    return codes | {"90460", "90461", "90471", "90472", "90473", "90474"}


class CoderLike(Protocol):
    src: Any
    dos: date
    age: float | None

    def problem(self, severity: str, code: str, message: str, location: str) -> None: ...


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text[:10]) if text else None
    except ValueError:
        return None


def _route(imm: dict[str, Any], default: str) -> str:
    codes = {str(c.get("code")) for c in (imm.get("route") or {}).get("coding") or []}
    if codes & {"PO"}:
        return "oral"
    if codes & {"NASINHLC", "NASINHL", "NASAL"}:
        return "intranasal"
    if codes & {"IM", "SQ", "IDINJ", "IVINJ"}:
        return "injection"
    return default


def _admin(code: str, system: str, day: date, ref: str) -> Line:
    return Line(code, system, "Vaccine administration", day, 1, [], [Z23], [ref])


def immunization_lines(c: CoderLike, vaccine_admin: str) -> list[Line]:
    """Product and administration lines for the completed Immunizations of the visit."""
    table, _ = vaccine_table()
    given: list[tuple[dict[str, Any], Vaccine, date]] = []
    # In the order given (occurrence, then id): the first one is the first administration.
    ordered = sorted(
        c.src.immunizations, key=lambda i: (str(i.get("occurrenceDateTime")), str(i.get("id")))
    )
    for imm in ordered:
        ref = f"Immunization/{imm.get('id')}"
        if imm.get("status") != "completed":
            continue
        cvx = next(
            (
                str(x.get("code")).lstrip("0") or "0"
                for x in (imm.get("vaccineCode") or {}).get("coding") or []
                if systems.canonical(str(x.get("system") or "")) == CVX
            ),
            None,
        )
        day = _day(imm.get("occurrenceDateTime")) or c.dos
        age = c.age if c.age is not None else 0.0
        rows = [v for v in table.get(cvx or "", []) if v.min_age <= age < v.max_age]
        if cvx is None or not rows:
            c.problem(
                "error",
                "vaccine-unmapped",
                f"{ref}: CVX {cvx or '(none)'} has no vaccine product code for a patient of"
                f" {int(age)} years in mappings/data/immunizations.csv (a curated subset of"
                " CDC's CVX/CPT table): code the product by hand or add the row",
                f"{ref}.vaccineCode",
            )
            continue
        given.append((imm, rows[0], day))
    lines: list[Line] = []
    for imm, v, day in given:
        ref = f"Immunization/{imm.get('id')}"
        lines.append(Line(v.cpt, CPT, v.description, day, 1, [], [Z23], [ref]))
    counselled = c.age is not None and c.age < 19
    first_done = False
    add: dict[str, int] = {}
    for imm, v, day in given:
        ref = f"Immunization/{imm.get('id')}"
        if vaccine_admin == "medicare" and v.medicare_admin:
            lines.append(
                Line(v.medicare_admin, HCPCS, "Vaccine administration", day, 1, [], [Z23], [ref])
            )
            continue
        if counselled and imm.get("education"):
            lines.append(
                Line(
                    "90460",
                    CPT,
                    "Vaccine administration with counselling",
                    day,
                    1,
                    [],
                    [Z23],
                    [ref],
                )
            )
            if v.components > 1:
                add["90461"] = add.get("90461", 0) + v.components - 1
            continue
        route = _route(imm, v.route)
        if not first_done:
            code = "90471" if route == "injection" else "90473"
            first_done = True
            lines.append(_admin(code, CPT, day, ref))
        else:
            code = "90472" if route == "injection" else "90474"
            add[code] = add.get(code, 0) + 1
    # CPT: 90473 is never reported with 90471; an injection after an oral first becomes
    # the first (90471) and the oral one the add-on 90474.
    firsts = [ln for ln in lines if ln.code == "90473"]
    if firsts and add.get("90472"):
        firsts[0].code = "90471"
        add["90472"] -= 1
        add["90474"] = add.get("90474", 0) + 1
    for code, units in sorted(add.items()):
        if units > 0:
            lines.append(
                Line(code, CPT, "Vaccine administration, each additional", c.dos, units, [], [Z23])
            )
    # One line per code and day, with units (90460 x 2 for two counselled vaccines).
    merged: dict[tuple[str, date], Line] = {}
    for ln in lines:
        have = merged.get((ln.code, ln.day))
        if have is None:
            merged[(ln.code, ln.day)] = ln
        else:
            have.quantity += ln.quantity
            have.sources += ln.sources
    return list(merged.values())
