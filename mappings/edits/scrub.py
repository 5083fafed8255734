"""Claim scrubbing: NCCI PTP edits, MUEs, add-on codes and medical necessity.

Runs on the service lines the coding engine built, before pricing. Each edit becomes a
problem with a FHIRPath location on the Claim; lines are removed (NCCI modifier
indicator 0) or capped (MUE) here, and never given modifier 59/X{EPSU}: whether the
services were distinct is in the documentation, so a coder decides.
"""

from __future__ import annotations

from typing import Any

from mappings.edits.addons import addon_edits
from mappings.edits.mue import mue_edits
from mappings.edits.ptp import ptp_edits


def scrub_lines(coder: Any, lines: list[Any], dx_codes: list[str]) -> None:
    """Apply the edits to ``lines`` (engine ``Line`` objects) in place."""
    ptp_edits(coder, lines)
    kept = [ln for ln in lines if not ln.removed]  # the claim's items, in order
    mue_edits(coder, kept)
    addon_edits(coder, kept)
    necessity_edits(coder, kept, dx_codes)


def necessity_edits(coder: Any, lines: list[Any], dx_codes: list[str]) -> None:
    """LCD-like coverage rules (``mappings/data/medical-necessity.csv``)."""
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
