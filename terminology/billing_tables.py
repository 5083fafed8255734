"""The billing tables behind ``TerminologyService``: NCCI PTP, MUE and add-on code edits,
the PFS relative values, GPCIs and localities, and the fee they give.

A mixin, so the service stays one object with one snapshot of the loaded tables; each
method picks the release in force on the date of service (``_table``), and when none is
loaded for that day the nearest release answers with a warning that says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from terminology.catalog import Entry, pick
from terminology.disk_tables import RowTable
from terminology.errors import TerminologyError
from terminology.model import AddOn, Gpci, Locality, Meta, Mue, PtpEdit, Rvu


@dataclass(slots=True)
class FeeResult:
    code: str
    modifier: str
    amount: float
    facility: bool
    locality: str
    rvu: Rvu
    gpci: Gpci
    conversion_factor: float
    rvu_version: str
    gpci_version: str

    @property
    def global_days(self) -> str:
        return self.rvu.global_days


class BillingTables:
    """Edits and fees; mixed into ``TerminologyService`` (which provides the snapshot)."""

    _snapshot: Any

    def maybe_reload(self) -> None:  # provided by TerminologyService
        raise NotImplementedError

    # ---------------------------------------------------------- edits and fees
    def _table(self, kind: str, day: date | None) -> tuple[Entry | None, list[str]]:
        """The billing table of ``kind`` in force on ``day``; when none is loaded for that
        day, the nearest release answers, with a warning that says so."""
        self.maybe_reload()
        entries = self._snapshot.of(kind)
        entry, warnings = pick(entries, day)
        if entry is None and entries and day is not None:
            entry = min(entries, key=lambda e: e.meta.effective_from)
            warnings = [
                f"No {entry.meta.name} release loaded for {day.isoformat()}; answered from "
                f"{entry.meta.version} ({entry.meta.period()}). Load the release for that date."
            ]
        if entry is not None and day is not None and not warnings and not entry.meta.official(day):
            m = entry.meta
            end = m.official_to.isoformat() if m.official_to else "until superseded"
            warnings = [
                f"{m.name} {m.version} is CMS's release for {m.official_from} to {end}; it "
                f"answers for {day.isoformat()} because no release for that date is loaded"
            ]
        return entry, warnings

    def table_meta(self, kind: str, day: date | None) -> tuple[Meta | None, list[str]]:
        """Which release of a billing table (mpfs-rvu, mue, aoc, ...) answers for ``day``."""
        entry, warnings = self._table(kind, day)
        return (entry.meta if entry else None), warnings

    def ncci_edits(self, code1: str, code2: str, day: date | None = None) -> list[PtpEdit]:
        """NCCI PTP edits in force on ``day`` between the two codes, in either order."""
        entry, _ = self._table("ncci-ptp", day)
        if entry is None:
            return []
        table = _rows(entry)
        day = day or date.today()
        found = table.find(code1, code2) + table.find(code2, code1)
        return [e for e in found if e.in_force(day)]

    def mue(self, code: str, day: date | None = None) -> Mue | None:
        entry, _ = self._table("mue", day)
        if entry is None:
            return None
        return _last(_rows(entry).find(code))

    def addons(self, code: str, day: date | None = None) -> list[AddOn]:
        """The AOC edits in force on ``day`` that make ``code`` an add-on code (empty: it
        is not an add-on code)."""
        entry, _ = self._table("aoc", day)
        if entry is None:
            return []
        when = day or date.today()
        return [e for e in _rows(entry).find(code) if e.in_force(when)]

    def rvu(self, code: str, day: date | None = None, modifier: str = "") -> Rvu | None:
        """The PFS relative value row of ``code`` (and modifier 26/TC/53) for ``day``."""
        entry, _ = self._table("mpfs-rvu", day)
        if entry is None:
            return None
        return _last(_rows(entry).find(code, modifier))

    def gpci(self, locality: str, day: date | None = None) -> Gpci | None:
        entry, _ = self._table("mpfs-gpci", day)
        return _gpci_index(entry).get(locality) if entry is not None else None

    def localities(self, day: date | None = None) -> list[Locality]:
        entry, _ = self._table("mpfs-locality", day)
        return list(entry.load()) if entry is not None else []

    def resolve_locality(self, text: str, day: date | None = None) -> str:
        """A PFS locality id (``MAC-NN``) from what a user configures: the id itself, a state
        abbreviation and locality number (``NY-01``), or a state and county
        (``NEW YORK/NEW YORK``, ``MO/Jackson``: the locality whose counties name it, else the
        state's rest-of-state or statewide locality). Raises ``TerminologyError``."""
        value = text.strip().upper()
        entry, _ = self._table("mpfs-gpci", day)
        gpcis: dict[str, Gpci] = _gpci_index(entry) if entry is not None else {}
        if value in gpcis or value == "00000-00":
            return value
        sep = "/" if "/" in value else ("," if "," in value else "-")
        state, _, rest = value.partition(sep)
        state, rest = state.strip(), rest.strip()
        if rest.isdigit():
            for g in gpcis.values():
                if g.state == state and g.locality.endswith(f"-{rest.zfill(2)}"):
                    return g.locality
        rows = self.localities(day)
        in_state = [r for r in rows if r.state.upper() == state] or [
            r for r in rows if _state_abbrev(r, gpcis) == state
        ]
        if not in_state:
            raise TerminologyError("unknown-locality", f"No PFS locality for {text!r}")
        if rest:
            for r in in_state:
                if re.search(rf"\b{re.escape(rest)}\b", r.counties.upper()):
                    return r.locality
        for r in in_state:
            if any(w in r.counties.upper() for w in ("ALL COUNTIES", "ALL OTHER", "REST OF")):
                return r.locality
        for r in in_state:
            if "REST OF" in r.area.upper() or "STATEWIDE" in r.area.upper():
                return r.locality
        raise TerminologyError(
            "unknown-locality",
            f"{text!r}: name a county of {state} or a locality number (26LOCCO)",
        )

    def fee(
        self,
        code: str,
        day: date | None = None,
        locality: str = "00000-00",
        facility: bool = False,
        modifier: str = "",
    ) -> FeeResult | None:
        """Medicare physician fee: (work*GPCIw + PE*GPCIpe + MP*GPCImp) * conversion factor.

        The national locality ``00000-00`` has every GPCI at 1.0. The work GPCI with the 1.0
        floor is used through the day the GPCI file says the floor was extended to."""
        rvu_entry, _ = self._table("mpfs-rvu", day)
        gpci_entry, _ = self._table("mpfs-gpci", day)
        if rvu_entry is None or gpci_entry is None:
            return None
        rvu = _last(_rows(rvu_entry).find(code, modifier))
        gpcis: dict[str, Gpci] = _gpci_index(gpci_entry)
        gpci = gpcis.get(locality) or (
            Gpci("00000-00", "National (all GPCIs 1.0)", 1.0, 1.0, 1.0)
            if locality == "00000-00"
            else None
        )
        if rvu is None or gpci is None:
            return None
        cf = rvu.conversion_factor or float(rvu_entry.extra.get("conversion_factor") or 0.0)
        # A code with "NA" non-facility PE is not paid in an office: the facility PE applies.
        pe = rvu.pe_facility if facility or rvu.na_nonfacility else rvu.pe_nonfacility
        work_gpci = gpci.work_on(day)
        amount = (rvu.work * work_gpci + pe * gpci.pe + rvu.malpractice * gpci.malpractice) * cf
        return FeeResult(
            code,
            modifier,
            round(amount, 2),
            facility,
            locality,
            rvu,
            gpci,
            cf,
            rvu_entry.meta.version,
            gpci_entry.meta.version,
        )


def _rows(entry: Entry) -> RowTable[Any]:
    """The on-disk billing table of ``entry`` (keyed look-ups, hot keys cached)."""
    table: RowTable[Any] = entry.load()
    return table


def _last(rows: list[Any]) -> Any:
    """The row a keyed table answers with: the last one the release lists for the key."""
    return rows[-1] if rows else None


def _state_abbrev(row: Locality, gpcis: dict[str, Gpci]) -> str:
    g = gpcis.get(row.locality)
    return g.state.upper() if g else ""


def _gpci_index(entry: Entry) -> dict[str, Gpci]:
    """Every GPCI of a release by locality (about 110 rows: kept in memory)."""
    value: dict[str, Gpci] | None = entry.extra.get("_gpci")
    if value is None:
        value = {g.locality: g for g in entry.load()}
        entry.extra["_gpci"] = value
    return value
