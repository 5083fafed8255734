"""Every 837 made from the coding gold set validates with pyx12 with 0 errors.

Each case is coded in process (the engine alone, as tests/coding/test_gold_engine.py
does); each clean insured claim becomes an 837P or 837I transaction set, and each kind is
validated as one interchange against its implementation guide (005010X222A1,
005010X223A2) by pyx12, the reference validator.
"""

from __future__ import annotations

from datetime import UTC, datetime

from server.config import Settings
from server.x12 import build_837i, build_837p, reader
from server.x12.envelope import Envelope
from server.x12.loops_837 import Frequency
from server.x12.outbound import X12Out
from server.x12.parties import Parties
from tests.x12.gold_837 import CASES, billable, coded, parts_of


def builder() -> X12Out:
    out = X12Out.__new__(X12Out)  # build_parts only needs the parties: no store here
    out.parties = Parties.from_settings(Settings())
    return out


def test_every_837_of_the_gold_set_validates_with_pyx12_with_no_error():
    out = builder()
    bodies: dict[str, list] = {"837P": [], "837I": []}
    names: dict[str, list[str]] = {"837P": [], "837I": []}
    refused = []
    for case in CASES:
        r, claim = coded(case)
        if not billable(claim):
            continue
        built = out.build_parts(parts_of(r, claim), Frequency())
        if built.report.missing:
            refused.append((case.name, [m.message() for m in built.report.missing]))
            continue
        bodies[built.kind].append(built.body)
        names[built.kind].append(case.name)
    assert refused == []
    assert len(bodies["837P"]) >= 150 and len(bodies["837I"]) >= 2
    moment = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
    for kind, version in (("837P", build_837p.VERSION), ("837I", build_837i.VERSION)):
        text = Envelope("BILLABLE", "CLEARINGHOUSE", "T", 1, moment, "HC", version).wrap(
            bodies[kind]
        )
        problems = reader.validate(text)
        assert [p.text() for p in problems] == [], f"{kind}: {names[kind]}"
