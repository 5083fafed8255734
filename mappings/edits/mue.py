"""NCCI medically unlikely edits by MUE adjudication indicator (MAI).

CMS MUE policy (NCCI Policy Manual, chapter I, section V; the MUE table's MAI column):

* MAI 1, line edit: the units of one claim line are compared with the MUE; a line over it
  is capped to the MUE here (the excess would be denied).
* MAI 2, date-of-service edit, policy: the units of every line of the code on one date of
  service are summed; more than the MUE is impossible by policy or regulation and cannot
  be overridden on appeal. An error: the coder corrects the units.
* MAI 3, date-of-service edit, clinical: summed per date of service likewise; more than the
  MUE is clinically unlikely, and the payer denies the excess unless the records support
  it on appeal. A warning that asks for review with the documentation.

An MUE of 0 is not a unit limit: CMS gives 0 to services Medicare does not pay under the
PFS (e.g. preventive visits 99381-99397, status N); the fee-schedule status says so.
"""

from __future__ import annotations

from typing import Any


def mue_edits(coder: Any, lines: list[Any]) -> None:
    t = coder.t
    per_day: dict[tuple[str, Any], list[int]] = {}
    for i, ln in enumerate(lines):
        if ln.removed or ln.revenue:
            continue
        per_day.setdefault((ln.code, ln.day), []).append(i)
    for (code, day), indexes in per_day.items():
        mue = t.mue(code, day)
        if mue is None or mue.units == 0:
            continue
        meta, _ = t.table_meta("mue", day)
        if meta is not None:
            coder.versions.add((meta.url, meta.version))
        source = f"MUE {meta.version if meta else ''}, MAI {mue.adjudication_indicator}"
        if mue.adjudication_indicator == "1":
            for i in indexes:
                ln = lines[i]
                if ln.quantity > mue.units:
                    coder.problem(
                        "warning",
                        "mue-capped",
                        f"MUE: {code} is limited to {mue.units} unit(s) per line ({source},"
                        f" {mue.rationale}); {ln.quantity} were reported, capped to {mue.units}",
                        f"Claim.item[{i}].quantity",
                    )
                    ln.quantity = mue.units
            continue
        units = sum(lines[i].quantity for i in indexes)
        if units <= mue.units:
            continue
        where = f"Claim.item[{indexes[0]}].quantity"
        if mue.adjudication_indicator == "2":
            coder.problem(
                "error",
                "mue-dos-policy",
                f"MUE: {units} units of {code} on {day} exceed the absolute limit of"
                f" {mue.units} per date of service ({source}, {mue.rationale}); this edit"
                " cannot be overridden or appealed: correct the units",
                where,
            )
        else:
            coder.problem(
                "warning",
                "mue-dos-clinical",
                f"MUE: {units} units of {code} on {day} exceed the clinical limit of"
                f" {mue.units} per date of service ({source}, {mue.rationale}); review the"
                " documentation: the payer denies the excess unless the records support it",
                where,
            )
