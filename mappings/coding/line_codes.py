"""Validity of a service line's code (CPT/HCPCS) on the line's date of service.

A code not in force, not billable or unknown is an error the coder must fix. Two
exceptions only inform: a shipped table with no version in force on that day (the
newest version answers), and a code of Billable's own rule tables that the shipped code
subset lacks (E/M, supplement, immunization, prolonged-service and facility codes).
"""

from __future__ import annotations

from typing import Protocol

from mappings.coding.facility import replacement_codes
from mappings.coding.immunizations import known_codes as immunization_codes
from mappings.coding.lines import Line
from mappings.coding.tables import RuleTables
from terminology.service import TerminologyService


class CoderLike(Protocol):
    """What the line check needs from the engine (``engine._Coder``)."""

    t: TerminologyService
    tables: RuleTables
    versions: set[tuple[str, str]]

    def problem(self, severity: str, code: str, message: str, location: str) -> None: ...


def check_line_code(c: CoderLike, line: Line, loc: str) -> None:
    """Validate ``line.code`` for ``line.day``; a valid code takes the table's display."""
    result = c.t.validate_code(line.system, line.code, line.day)
    if not result.valid and result.reason == "not-effective" and result.version is None:
        # No version of the (shipped, undated) table is in force on that day.
        newest = c.t.validate_code(line.system, line.code, None)
        if newest.valid or newest.reason == "unknown-code":
            c.problem(
                "information",
                "table-out-of-date",
                f"{result.message}; {line.code} was checked against the newest version",
                loc,
            )
            result = newest
    if result.version:
        c.versions.add((result.system, result.version))
    if result.valid:
        line.display = result.display or line.display
        return
    known = c.tables.em_codes() | {v[1] for v in c.tables.supplement.values()}
    known |= immunization_codes() | {"99417", "G2212", "G0402", "G0438", "G0439"}
    known |= replacement_codes()
    if result.reason == "unknown-code" and line.code in known:
        c.problem(
            "information",
            "shipped-subset",
            f"{line.code} is missing from the shipped code subset; accepted from the Billable"
            " rule tables (load the full CPT/HCPCS file to check it)",
            loc,
        )
        return
    kind = {
        "not-billable": "code-not-billable",
        "not-effective": "code-not-effective",
        "unknown-code": "code-unknown",
    }.get(result.reason, "code-invalid")
    c.problem("error", kind, result.message, loc)
