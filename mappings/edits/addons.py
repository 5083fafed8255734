"""NCCI add-on code edits (AOC file): an add-on code is paid only with a primary code.

* Type 1: CPT lists the primary codes (the AOC file has them). An add-on without one of
  them on the same date of service by the same provider is an error.
* Type 2: no primary codes are listed (``CCCCC``): the MAC defines them. A warning when the
  add-on is the only procedure of its date.
* Type 3: some primary codes are listed, the MAC may accept others. A warning when none of
  the listed ones is on the claim that day.
"""

from __future__ import annotations

from typing import Any


def addon_edits(coder: Any, lines: list[Any]) -> None:
    t = coder.t
    for i, ln in enumerate(lines):
        if ln.removed or ln.revenue:
            continue
        edits = t.addons(ln.code, ln.day)
        if not edits:
            continue
        meta, _ = t.table_meta("aoc", ln.day)
        if meta is not None:
            coder.versions.add((meta.url, meta.version))
        same_day = {o.code for o in lines if o is not ln and not o.removed and o.day == ln.day}
        types = {e.edit_type for e in edits}
        primaries = {
            e.primary
            for e in edits
            if e.primary != "CCCCC" and (e.primary_deleted is None or ln.day <= e.primary_deleted)
        }
        where = f"Claim.item[{i}].productOrService"
        version = meta.version if meta else ""
        if primaries & same_day:
            continue
        shown = ", ".join(sorted(primaries)[:6]) + (", ..." if len(primaries) > 6 else "")
        if "1" in types:
            coder.problem(
                "error",
                "addon-without-primary",
                f"{ln.code} is an add-on code (AOC {version}, type 1): it is reported only with"
                f" one of its primary codes ({shown}) on the same date, and none is on the"
                " claim. Add the primary service or remove the add-on",
                where,
            )
        elif "3" in types:
            coder.problem(
                "warning",
                "addon-primary-unlisted",
                f"{ln.code} is an add-on code (AOC {version}, type 3) reported without any of"
                f" the primary codes CMS lists ({shown}); your MAC may accept another primary:"
                " check its policy",
                where,
            )
        elif not same_day:
            coder.problem(
                "warning",
                "addon-primary-unlisted",
                f"{ln.code} is an add-on code (AOC {version}, type 2: the MAC defines its"
                " primary codes) and is the only service of its date: check your MAC's list",
                where,
            )
