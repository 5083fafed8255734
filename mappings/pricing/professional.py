"""Price the service lines of a professional claim with the Medicare PFS indicators.

Each line's fee is ``(work RVU x work GPCI + PE RVU x PE GPCI + MP RVU x MP GPCI) x CF`` for
the configured locality (``terminology.fee``), at the facility PE in a facility place of
service, times the provider's charge factor. Then, in this order (CMS Claims Processing
Manual, chapter 12, section 40 and the PFS relative value file's indicator definitions):

* payment status: A, R, T priced; B (bundled) flagged and charged 0; N (non-covered by
  Medicare) and I (not valid for Medicare) priced with a note or a warning; C (carrier
  priced) from the user's charge master, else flagged; codes the PFS does not price
  (labs, drugs, anesthesia, ...) from a charge master, else an error.
* modifier 26/TC: the PC/TC indicator must allow it (1); the 26 or TC row is priced.
* bilateral indicator (modifier 50): 0 or 9: 50 does not apply (removed, 100 %); 1: 150 %;
  2: the code is bilateral already, 50 (or LT and RT) is an error; 3: each side 100 %.
* assistant (80, 81, 82, AS) and co-surgeon (62) / team (66) indicators.
* multiple procedures (indicator 2 or 3), same day: the highest fee at 100 %, the others at
  50 % with modifier 51 (indicators 4-7 are family reductions the payer applies).

A user's own charge master (``BILLABLE_CHARGE_MASTER``) overrides the fee schedule for the
codes it lists. The illustrative charge master that ships prices only what the RVU file
does not (labs, vaccines, drugs, revenue codes).
"""

from __future__ import annotations

from typing import Any

from mappings.coding.tables import ChargeRow, RuleTables
from mappings.pricing.fee_schedule import PAYABLE, STATUS_MEANING, indicators
from terminology.service import TerminologyError

ILLUSTRATIVE = "charge-master-illustrative.csv"
ASSISTANT = ("80", "81", "82", "AS")
ASSISTANT_SHARE = {"80": 0.16, "81": 0.16, "82": 0.16, "AS": 0.16 * 0.85}
CO_SURGEON_SHARE = 0.625
DEFAULT_CF = 33.4009


def users_charge_master(tables: RuleTables) -> bool:
    """Is the charge master the provider's own (BILLABLE_CHARGE_MASTER) and not the
    illustrative one that ships?"""
    return ILLUSTRATIVE not in tables.sources


def _charge(
    row: ChargeRow, coder: Any, facility: bool, professional: bool, locality: str = "00000-00"
) -> float:
    """A charge master row's price: a fixed charge, or its RVUs x GPCI x CF."""
    if row.kind == "fixed":
        return row.charge
    g = coder.t.gpci(locality) if locality != "00000-00" else None
    gw, gpe, gmp = (g.work, g.pe, g.malpractice) if g else (1.0, 1.0, 1.0)
    pe = 0.0 if professional else (row.pe_facility if facility else row.pe_nonfacility)
    return (row.work * gw + pe * gpe + row.malpractice * gmp) * DEFAULT_CF


def price_lines(coder: Any, lines: list[Any]) -> None:
    """Set ``unit_price`` on every line (engine ``Line`` objects, in claim order)."""
    factor = coder.config.charge_factor
    own = users_charge_master(coder.tables)
    locality = _locality(coder, lines)
    for ln in lines[:1]:  # the GPCI and locality releases the claim was priced with
        for kind in ("mpfs-gpci", "mpfs-locality"):
            meta, _ = coder.t.table_meta(kind, ln.day)
            if meta is not None and locality != "00000-00":
                coder.versions.add((meta.url, meta.version))
    surgical: list[tuple[float, int]] = []  # (fee, index) of lines subject to MPPR
    for i, ln in enumerate(lines):
        where = f"Claim.item[{i}]"
        row = coder.tables.charges.get(ln.code)
        if ln.revenue:  # institutional lines: the hospital's charge master first
            if row is not None:
                ln.unit_price = round(row.charge, 2)
                continue
            if ln.code == ln.revenue or indicators(ln.code, ln.day, coder.t, "") is None:
                ln.unit_price = 0.0
                _no_price(coder, ln, where)
                continue
            # No hospital charge for a CPT/HCPCS line: the PFS (a professional schedule)
            # stands in, said on the claim, so the line is priced and never guessed.
            coder.problem(
                "information",
                "price-pfs-stand-in",
                f"{ln.code} has no row in the charge master for this facility claim: priced"
                " from the Medicare PFS as a stand-in for the hospital's charge; load your"
                " charge master",
                f"{where}.unitPrice",
            )
        if own and row is not None:
            amount = _charge(row, coder, coder.facility, "26" in ln.modifiers, locality)
            ln.unit_price = round(amount * factor, 2)
            coder.problem(
                "information",
                "price-charge-master",
                f"{ln.code} priced from your charge master ({amount:.2f} x {factor})",
                f"{where}.unitPrice",
            )
            continue
        mod = next((m for m in ln.modifiers if m in ("26", "TC")), "")
        found = indicators(ln.code, ln.day, coder.t, mod)
        if found is None:
            _not_in_pfs(coder, ln, row, where, factor, locality=locality)
            continue
        coder.versions.add(("https://billable.dev/fhir/mpfs-rvu", found.release))
        for warning in found.warnings:
            coder.problem("information", "table-fallback", warning, f"{where}.unitPrice")
        rvu = found.rvu
        if mod and rvu.pctc != "1":
            coder.problem(
                "error",
                "pctc-modifier-invalid",
                f"Modifier {mod} is not allowed with {ln.code}: its PC/TC indicator is"
                f" {rvu.pctc} (only 1 splits into professional and technical components;"
                f" {found.release})",
                f"{where}.modifier",
            )
        status = rvu.status
        if status == "B":
            ln.unit_price = 0.0
            coder.problem(
                "warning",
                "fee-bundled",
                f"{ln.code} has PFS status B ({STATUS_MEANING['B']}, {found.release}): it is"
                " never paid separately; charged 0.00. Remove it unless your payer pays it",
                f"{where}.unitPrice",
            )
            continue
        if status == "C" or status not in (*PAYABLE, "N", "I"):
            _not_in_pfs(coder, ln, row, where, factor, status, found.release, locality)
            continue
        fee = coder.t.fee(ln.code, ln.day, locality, coder.facility, mod)
        if fee is None:
            _not_in_pfs(coder, ln, row, where, factor, status, found.release, locality)
            continue
        amount = fee.amount
        if status == "N":
            coder.problem(
                "information",
                "fee-noncovered-medicare",
                f"{ln.code} has PFS status N ({STATUS_MEANING['N']}); priced from its RVUs."
                " Medicare patients are liable (give an ABN); other payers may cover it",
                f"{where}.unitPrice",
            )
        elif status == "I" and _category_ii(ln.code):
            coder.problem(
                "information",
                "fee-quality-code",
                f"{ln.code} is a CPT Category II performance measurement code (PFS status I):"
                " reported for quality at 0.00, never paid",
                f"{where}.unitPrice",
            )
        elif status == "I" and _may_bill_medicare(coder, ln.day):
            # Status I says nothing about other payers (99417 is CPT's prolonged code for
            # commercial plans, G2212 Medicare's): warn only when Medicare may be billed.
            coder.problem(
                "warning",
                "fee-invalid-medicare",
                f"{ln.code} has PFS status I ({STATUS_MEANING['I']}): bill Medicare with the"
                " code CMS uses instead; other payers may accept it",
                f"{where}.productOrService",
            )
        if amount == 0 and row is not None and not _category_ii(ln.code):
            # Listed with no relative values (e.g. CDT codes, S codes): the PFS gives no
            # price, so the charge master does, and the claim says so.
            _not_in_pfs(coder, ln, row, where, factor, status, found.release, locality)
            continue
        amount = _bilateral(coder, ln, lines, rvu.bilateral, amount, where)
        amount = _surgical_team(coder, ln, rvu, amount, where)
        ln.unit_price = round(amount * factor, 2)
        if rvu.mult_proc in ("2", "3") and not ln.em:
            surgical.append((amount, i))
    _multiple_procedures(coder, lines, surgical, factor)


def _category_ii(code: str) -> bool:
    return len(code) == 5 and code[:4].isdigit() and code[4] == "F"


def _locality(coder: Any, lines: list[Any]) -> str:
    """The configured locality as a PFS locality id: ``MAC-NN``, ``NY-01`` or a state and
    county (26LOCCO); an unknown one is an error and the national GPCIs (1.0) are used."""
    configured = coder.config.locality or "00000-00"
    day = lines[0].day if lines else None
    try:
        locality: str = coder.t.resolve_locality(configured, day)
    except TerminologyError as err:
        coder.problem(
            "error",
            "locality-unknown",
            f"The configured locality {configured!r} is not a PFS locality ({err.message});"
            " priced with the national GPCIs (1.0): set BILLABLE_CODING_LOCALITY",
            "Claim.item",
        )
        return "00000-00"
    return locality


def _no_price(coder: Any, ln: Any, where: str) -> None:
    coder.problem(
        "error",
        "no-price",
        f"{ln.code} has no price in the fee schedule or the charge master: add it to your"
        " charge master",
        f"{where}.unitPrice",
    )


def _not_in_pfs(
    coder: Any,
    ln: Any,
    row: ChargeRow | None,
    where: str,
    factor: float,
    status: str | None = None,
    release: str = "",
    locality: str = "00000-00",
) -> None:
    """A code the fee schedule does not price: a charge master row, else an error."""
    if status == "C":
        coder.problem(
            "warning",
            "carrier-priced",
            f"{ln.code} is carrier priced (PFS status C, {release}): the MAC sets the fee;"
            " put your charge in your charge master (BILLABLE_CHARGE_MASTER)",
            f"{where}.unitPrice",
        )
    if row is None:
        ln.unit_price = 0.0
        _no_price(coder, ln, where)
        return
    amount = _charge(row, coder, coder.facility, "26" in ln.modifiers, locality)
    ln.unit_price = round(amount * factor, 2)
    why = (
        f"PFS status {status} ({STATUS_MEANING.get(status, '?')}, {release})"
        if status
        else "not in the PFS relative value file"
    )
    coder.problem(
        "information",
        "price-illustrative",
        f"{ln.code} is {why}: priced from the illustrative charge master ({ln.unit_price:.2f});"
        " replace it with your charges (BILLABLE_CHARGE_MASTER)",
        f"{where}.unitPrice",
    )


def _bilateral(
    coder: Any, ln: Any, lines: list[Any], indicator: str, amount: float, where: str
) -> float:
    """Modifier 50 (and LT + RT of one code the same day) by the bilateral indicator."""
    pair = any(
        o is not ln and o.code == ln.code and o.day == ln.day and "LT" in o.modifiers for o in lines
    ) and ("RT" in ln.modifiers)
    if "50" not in ln.modifiers and not pair:
        return amount
    if indicator == "2":
        shown = "modifier 50" if "50" in ln.modifiers else "LT and RT lines"
        coder.problem(
            "error",
            "bilateral-modifier-invalid",
            f"{ln.code} is bilateral by definition (bilateral indicator 2): {shown} must not"
            " be reported; remove the modifier (one line, one unit) or choose the unilateral"
            " code if only one side was done",
            f"{where}.modifier",
        )
        return amount
    if pair:
        return amount  # LT and RT lines are priced one by one
    if indicator in ("0", "9"):
        ln.modifiers.remove("50")
        coder.problem(
            "warning",
            "bilateral-not-allowed",
            f"{ln.code} takes no bilateral adjustment (bilateral indicator {indicator}):"
            " modifier 50 was removed and the line is priced at 100 %; if both sides were"
            " done, report the units or sides the payer requires",
            f"{where}.modifier",
        )
        return amount
    if indicator == "1":
        coder.problem(
            "information",
            "bilateral-150",
            f"{ln.code}-50: bilateral surgery is priced at 150 % (bilateral indicator 1)",
            f"{where}.unitPrice",
        )
        return amount * 1.5
    if indicator == "3":
        coder.problem(
            "information",
            "bilateral-each-side",
            f"{ln.code}-50: each side is priced at 100 % (bilateral indicator 3)",
            f"{where}.unitPrice",
        )
        return amount * 2.0
    return amount


def _surgical_team(coder: Any, ln: Any, rvu: Any, amount: float, where: str) -> float:
    """Assistant at surgery (80/81/82/AS) and co-surgeons (62) / team (66)."""
    for mod in [m for m in ln.modifiers if m in ASSISTANT]:
        ind = rvu.assistant
        if ind == "2":
            coder.problem(
                "information",
                "assistant-priced",
                f"{ln.code}-{mod}: assistant at surgery priced at"
                f" {ASSISTANT_SHARE[mod] * 100:.1f} % (assistant indicator 2)",
                f"{where}.unitPrice",
            )
            return amount * ASSISTANT_SHARE[mod]
        if ind == "0":
            coder.problem(
                "warning",
                "assistant-documentation",
                f"{ln.code}-{mod}: an assistant is paid only with documentation of medical"
                " necessity (assistant indicator 0); attach it",
                f"{where}.modifier",
            )
            return amount * ASSISTANT_SHARE[mod]
        coder.problem(
            "error",
            "assistant-not-allowed",
            f"{ln.code}-{mod}: an assistant at surgery is never paid for this code"
            f" (assistant indicator {ind}); remove the line or the modifier",
            f"{where}.modifier",
        )
        return 0.0
    for mod, ind in (("62", rvu.co_surgeon), ("66", rvu.team)):
        if mod not in ln.modifiers:
            continue
        what = "co-surgeons" if mod == "62" else "a surgical team"
        if ind == "2":
            share = CO_SURGEON_SHARE if mod == "62" else 1.0
            if mod == "66":
                coder.problem(
                    "warning",
                    "team-surgery-priced-by-carrier",
                    f"{ln.code}-66: team surgery is priced by the MAC; the full fee is shown",
                    f"{where}.unitPrice",
                )
            return amount * share
        if ind == "1":
            coder.problem(
                "warning",
                "co-surgeon-documentation" if mod == "62" else "team-documentation",
                f"{ln.code}-{mod}: {what} are paid only with supporting documentation"
                f" (indicator 1); attach it",
                f"{where}.modifier",
            )
            return amount * (CO_SURGEON_SHARE if mod == "62" else 1.0)
        coder.problem(
            "error",
            "co-surgeon-not-allowed" if mod == "62" else "team-not-allowed",
            f"{ln.code}-{mod}: {what} are not permitted for this code (indicator {ind})",
            f"{where}.modifier",
        )
        return 0.0
    return amount


def _multiple_procedures(
    coder: Any, lines: list[Any], surgical: list[tuple[float, int]], factor: float
) -> None:
    """Standard MPPR: per day, the highest fee at 100 %, every other at 50 % with 51."""
    by_day: dict[Any, list[tuple[float, int]]] = {}
    for amount, i in surgical:
        by_day.setdefault(lines[i].day, []).append((amount, i))
    for ranked in by_day.values():
        if len(ranked) < 2:
            continue
        ranked.sort(key=lambda x: (-x[0], x[1]))
        first = lines[ranked[0][1]].code
        for amount, i in ranked[1:]:
            ln = lines[i]
            if "51" not in ln.modifiers:
                ln.modifiers.append("51")
            ln.unit_price = round(amount * 0.5 * factor, 2)
            coder.problem(
                "information",
                "multiple-procedure",
                f"{ln.code}: multiple procedure the same day as {first} (multiple procedure"
                " indicator 2/3): modifier 51, priced at 50 % (ranked by fee)",
                f"Claim.item[{i}].unitPrice",
            )


def _may_bill_medicare(coder: Any, day: Any) -> bool:
    """Whether the claim's payer may be Medicare (the payer kind from the active Coverage,
    ``mappings.coding.payers``); without a Coverage it is self-pay."""
    from mappings.coding.payers import active_coverages, coverage_kind

    active = active_coverages(coder.src.coverages, day)
    if not active:
        return False
    kind, _matched = coverage_kind(active[0])
    return kind == "medicare"
