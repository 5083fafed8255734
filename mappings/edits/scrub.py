"""Claim scrubbing: NCCI procedure-to-procedure edits, MUEs and medical necessity.

Runs on the service lines the coding engine built, before pricing. Each edit becomes a
problem with a FHIRPath location on the Claim; lines are removed (NCCI modifier
indicator 0) or capped (MUE) here, and never given modifier 59/X{EPSU}: whether the
services were distinct is in the documentation, so a coder decides.
"""

from __future__ import annotations

from typing import Any


def scrub_lines(coder: Any, lines: list[Any], dx_codes: list[str]) -> None:
    """Apply the edits to ``lines`` (engine ``Line`` objects) in place."""
    t = coder.t
    # NCCI PTP: pairs of lines on the same day.
    for i, a in enumerate(lines):
        for j in range(i + 1, len(lines)):
            b = lines[j]
            if a.removed or b.removed or a.day != b.day or a.revenue or b.revenue:
                continue
            for edit in t.ncci_edits(a.code, b.code, a.day):
                col2_index = j if b.code == edit.column2 else i
                col2 = lines[col2_index]
                where = f"Claim.item[{col2_index}].productOrService"
                if edit.modifier_indicator == "0":
                    col2.removed = True
                    coder.problem(
                        "warning",
                        "ncci-removed",
                        f"NCCI: {edit.column2} is a component of {edit.column1} on the same day"
                        f" and no modifier allows it ({edit.rationale}); {edit.column2} was"
                        " removed from the claim",
                        where,
                    )
                elif edit.modifier_indicator == "1":
                    coder.problem(
                        "warning",
                        "ncci-review",
                        f"NCCI: {edit.column2} is bundled into {edit.column1} on the same day"
                        f" ({edit.rationale}). If the documentation shows a distinct service"
                        " (separate site, session or encounter), add 59 or XE/XS/XP/XU;"
                        " otherwise remove it. Not added automatically",
                        where,
                    )
    # MUE: units per line per day.
    for i, ln in enumerate(lines):
        if ln.removed or ln.revenue:
            continue
        mue = t.mue(ln.code, ln.day)
        if mue is not None and ln.quantity > mue.units:
            coder.problem(
                "warning",
                "mue-capped",
                f"MUE: {ln.code} is limited to {mue.units} unit(s) per day ({mue.rationale});"
                f" {ln.quantity} were reported, capped to {mue.units}",
                f"Claim.item[{i}].quantity",
            )
            ln.quantity = mue.units
    # Medical necessity (LCD-like coverage rules).
    for i, ln in enumerate(lines):
        rule = coder.tables.necessity.get(ln.code)
        if ln.removed or rule is None:
            continue
        policy, prefixes = rule
        if not any(code.startswith(prefixes) for code in dx_codes):
            coder.problem(
                "warning",
                "medical-necessity",
                f"Medical necessity: {ln.code} is covered by {policy} only with a supporting"
                f" diagnosis ({', '.join(prefixes)}), and none is on the claim; the payer will"
                " likely deny it (obtain an ABN or add the documented diagnosis)",
                f"Claim.item[{i}].diagnosisSequence",
            )
