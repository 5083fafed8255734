"""NCCI procedure-to-procedure (PTP) edits on the lines of one claim.

Modifier indicator 0: the column-2 code is never paid with the column-1 code the same day,
so the column-2 line is removed. Indicator 1: it may be paid only when the documentation
shows a distinct service, signalled by an NCCI-associated modifier (NCCI Policy Manual,
chapter I, section E: 59, XE, XS, XP, XU, anatomic modifiers E1-E4, FA-F9, TA-T9, LT/RT on
different sides, 24, 25, 27, 57, 58, 78, 79, 91). Without one, the claim is held (an
error: draft claim and a review Task) until a coder adds the right modifier or drops the
line; Billable never adds 59/X{EPSU} itself.
"""

from __future__ import annotations

from typing import Any

ASSOCIATED = {
    "59", "XE", "XS", "XP", "XU", "24", "25", "27", "57", "58", "78", "79", "91",
    "E1", "E2", "E3", "E4", "FA", "F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "F9",
    "TA", "T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9", "LC", "LD", "LM", "RC", "RI",
}  # fmt: skip


def distinct_service(a: Any, b: Any) -> str | None:
    """The evidence on the two lines that they are distinct services, or None."""
    for ln in (b, a):
        found = ASSOCIATED & set(ln.modifiers)
        if found:
            return f"modifier {', '.join(sorted(found))} on {ln.code}"
    sides = (
        {m for m in a.modifiers if m in ("LT", "RT")},
        {m for m in b.modifiers if m in ("LT", "RT")},
    )
    if sides[0] and sides[1] and not sides[0] & sides[1]:
        return f"different sides ({'/'.join(sides[0])} and {'/'.join(sides[1])})"
    return None


def ptp_edits(coder: Any, lines: list[Any]) -> None:
    t = coder.t
    for i, a in enumerate(lines):
        for j in range(i + 1, len(lines)):
            b = lines[j]
            if a.removed or b.removed or a.day != b.day or a.revenue or b.revenue:
                continue
            for edit in t.ncci_edits(a.code, b.code, a.day):
                col2_index = j if b.code == edit.column2 else i
                col2 = lines[col2_index]
                col1 = lines[i if col2_index == j else j]
                where = f"Claim.item[{col2_index}].productOrService"
                coder.versions.add(
                    ("https://billable.dev/fhir/ncci-ptp", edit_version(coder, a.day))
                )
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
                    evidence = distinct_service(col1, col2)
                    if evidence:
                        coder.problem(
                            "information",
                            "ncci-distinct-service",
                            f"NCCI: {edit.column2} is bundled into {edit.column1} unless"
                            f" distinct; {evidence} shows a distinct service",
                            where,
                        )
                        continue
                    coder.problem(
                        "error",
                        "ncci-review",
                        f"NCCI: {edit.column2} is bundled into {edit.column1} on the same day"
                        f" ({edit.rationale}; modifier indicator 1). The claim is held: if the"
                        " documentation shows a distinct service (separate site, session or"
                        " encounter), add 59 or XE/XS/XP/XU to the line; otherwise remove it."
                        " Not added automatically",
                        where,
                    )


def edit_version(coder: Any, day: Any) -> str:
    meta, _ = coder.t.table_meta("ncci-ptp", day)
    return meta.version if meta else "none"
