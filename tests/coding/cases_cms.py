"""Gold cases for the rules that the CMS tables drive (issue 14).

Each case is a hand-coded encounter as in ``tests/coding/cases.py`` (2026-03-02, an
established patient's 20-minute office visit unless said otherwise) plus, where pricing
is the point, the expected ``unitPrice`` of every line. Prices are written as the fee
schedule formula with the RVU26C values they come from, national locality (all GPCIs
1.0), conversion factor 33.4009 (non-QP):

    fee = (work RVU + PE RVU + MP RVU) x 33.4009, rounded to the cent

Sources: the PFS relative value file RVU26C and its indicator definitions (CMS Claims
Processing Manual, Pub. 100-04, ch. 12, sections 20-40: status, PC/TC, multiple
procedures, bilateral surgery, assistants at surgery, co-surgeons); the NCCI MUE table
(2026Q2) and NCCI Policy Manual ch. I (MAI); the NCCI add-on code edits (2026Q2); HCPCS
January 2026; ICD-10-CM FY2027 (April 2026 tabular + FY2027 addenda).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.coding.cases import Case, cond, proc
from tests.coding.cases_coder import MEDICARE

CF = 33.4009
HCPCS = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
MODIFIER = "https://billable.dev/fhir/StructureDefinition/procedure-modifier"
CPT_SYSTEM = "http://www.ama-assn.org/go/cpt"


def pfs(work: float, pe: float, mp: float) -> float:
    """The national PFS amount of one line (GPCIs 1.0)."""
    return round((work + pe + mp) * CF, 2)


def share(amount: float, fraction: float) -> float:
    return round(amount * fraction, 2)


def with_modifier(p: dict[str, Any], *codes: str) -> dict[str, Any]:
    """A Procedure that states CPT/HCPCS modifiers (80, 62, 59, ...) in Billable's extension."""
    p["extension"] = [
        {"url": MODIFIER, "valueCoding": {"system": CPT_SYSTEM, "code": c}} for c in codes
    ]
    return p


def on(day: str) -> dict[str, Any]:
    """An Encounter period on another date of service (20 minutes)."""
    return {"period": {"start": f"{day}T09:00:00Z", "end": f"{day}T09:20:00Z"}}


@dataclass
class CmsCase(Case):
    # Expected Claim.item.unitPrice per line, in claim order (None: not checked).
    prices: list[float] | None = None


# RVU26C rows used below (work, non-facility PE, facility PE, MP):
E99213 = pfs(1.30, 1.46, 0.09)  # 95.19
E99283_FACILITY = pfs(1.60, 0.28, 0.20)
J20610_OFFICE = pfs(0.77, 1.16, 0.13)
J20610_FACILITY = pfs(0.77, 0.29, 0.13)
KNEE = pfs(19.11, 11.58, 4.02)  # 27447: non-facility PE is NA, the facility PE applies
I10060 = pfs(1.19, 2.53, 0.13)
R12001 = pfs(0.82, 2.41, 0.18)

CASES_CMS: list[Case] = [
    CmsCase(
        "cms_office_visit_priced_from_rvu26c",
        conditions=[cond("htn", "I10")],
        dx=["I10"],
        lines=[("99213", (), 1, (1,))],
        prices=[E99213],
    ),
    CmsCase(
        # The ED is a facility place of service: the facility PE RVUs apply.
        "cms_facility_pe_in_the_emergency_department",
        # Issue 15: no separately identifiable problem besides the procedure's indication,
        # so no E/M (MCPM Ch. 12 sec. 40.1); the PFS rule this case tests is unchanged.
        enc_class="EMER",
        conditions=[cond("knee", "M25.561")],
        procedures=[proc("inj", "20610")],
        dx=["M25.561"],
        pos="23",
        lines=[("20610", (), 1, (1,))],
        edits={"ed-level-review", "em-procedure-only"},
        prices=[J20610_FACILITY],
    ),
    CmsCase(
        # PC/TC indicator 1 in a facility: the professional component (26 row) is billed.
        "cms_modifier_26_priced_from_the_26_row",
        enc_class="EMER",
        conditions=[cond("pain", "R07.9")],
        procedures=[proc("cxr", "71046")],
        dx=["R07.9"],
        pos="23",
        lines=[("99283", (), 1, (1,)), ("71046", ("26",), 1, (1,))],
        edits={"ed-level-review"},
        prices=[E99283_FACILITY, pfs(0.21, 0.08, 0.01)],
    ),
    CmsCase(
        # Status B: payment is always bundled into another service; flagged, charged 0.
        "cms_status_b_bundled_is_flagged",
        conditions=[cond("htn", "I10")],
        procedures=[proc("po", "99024")],
        dx=["I10"],
        lines=[("99213", (), 1, (1,)), ("99024", (), 1, (1,))],
        edits={"fee-bundled"},
        prices=[E99213, 0.0],
    ),
    CmsCase(
        # Status N (Medicare non-covered): priced from its RVUs with a note.
        "cms_status_n_preventive_visit_priced_with_a_note",
        types=["410620009"],  # well child visit -> preventive
        birth="2016-05-01",
        established=True,
        dx=["Z00.129"],
        lines=[("99393", (), 1, (1,))],
        info={"fee-noncovered-medicare"},
        prices=[pfs(1.50, 1.67, 0.08)],
    ),
    CmsCase(
        # Status I: not valid for Medicare (CMS uses another code). S9451 has no RVUs, so the
        # charge master prices it and says so.
        "cms_status_i_not_valid_for_medicare",
        # (The warning concerns Medicare only: the patient has Medicare Part B.)
        coverages=[MEDICARE],
        conditions=[cond("htn", "I10")],
        procedures=[proc("q", "S9451", HCPCS)],
        dx=["I10"],
        lines=[("99213", (), 1, (1,)), ("S9451", (), 1, (1,))],
        edits={"fee-invalid-medicare"},
        info={"price-illustrative"},
        prices=[E99213, 60.0],
    ),
    CmsCase(
        # A Category II code (status I) is a quality code: reported at 0.00, a note only.
        "cms_category_ii_code_is_reported_at_zero",
        conditions=[cond("htn", "I10")],
        procedures=[proc("q", "1111F")],
        dx=["I10"],
        lines=[("99213", (), 1, (1,)), ("1111F", (), 1, (1,))],
        info={"fee-quality-code"},
        prices=[E99213, 0.0],
    ),
    CmsCase(
        # Status C: the MAC prices it; without the user's charge master, the illustrative
        # row (6.0 / 6.0 / 0.9 RVUs) prices it and the claim says so.
        "cms_status_c_carrier_priced_is_flagged",
        conditions=[cond("fx", "S02.401A")],
        procedures=[proc("unl", "21899")],
        dx=["S02.401A"],
        lines=[("99213", (), 1, (1,)), ("21899", (), 1, (1,))],
        edits={"carrier-priced"},
        info={"price-illustrative"},
        prices=[E99213, pfs(6.0, 6.0, 0.9)],
    ),
    CmsCase(
        # Status X (clinical lab fee schedule): not a PFS service; the charge master prices it.
        "cms_lab_outside_the_pfs_priced_from_the_charge_master",
        conditions=[cond("htn", "I10")],
        procedures=[proc("cmp", "80053")],
        dx=["I10"],
        lines=[("99213", (), 1, (1,)), ("80053", (), 1, (1,))],
        info={"price-illustrative"},
        prices=[E99213, 18.0],
    ),
    CmsCase(
        # Bilateral indicator 1: one line with 50, 150 % (Pub. 100-04 ch. 12 s. 40.7).
        "cms_bilateral_indicator_1_is_150_percent",
        # Issue 15: no separately identifiable problem besides the procedure's indication,
        # so no E/M (MCPM Ch. 12 sec. 40.1); the PFS rule this case tests is unchanged.
        conditions=[cond("oa", "M17.0")],
        procedures=[proc("inj", "20610", site="bilateral knees")],
        dx=["M17.0"],
        edits={"em-procedure-only"},
        lines=[("20610", ("50",), 1, (1,))],
        info={"bilateral-150"},
        prices=[share(J20610_OFFICE, 1.5)],
    ),
    CmsCase(
        # Bilateral indicator 2: the code is bilateral by definition; 50 is an error.
        "cms_bilateral_indicator_2_modifier_50_is_an_error",
        conditions=[cond("amd", "H35.30")],
        procedures=[proc("photo", "92250", site="bilateral eyes")],
        dx=["H35.30"],
        lines=[("99213", (), 1, (1,)), ("92250", ("50",), 1, (1,))],
        status="draft",
        edits={"bilateral-modifier-invalid"},
        prices=[E99213, pfs(0.39, 0.70, 0.02)],
    ),
    CmsCase(
        # Bilateral indicator 3: each side at 100 % (radiology).
        "cms_bilateral_indicator_3_each_side_100_percent",
        conditions=[cond("pain", "M25.519")],
        procedures=[proc("xr", "73030", site="bilateral shoulders")],
        dx=["M25.519"],
        lines=[("99213", (), 1, (1,)), ("73030", ("50",), 1, (1,))],
        info={"bilateral-each-side"},
        prices=[E99213, share(pfs(0.18, 0.87, 0.02), 2.0)],
    ),
    CmsCase(
        # Multiple procedure indicator 2: the highest fee at 100 %, the next at 50 % with 51.
        "cms_multiple_procedures_ranked_by_fee",
        conditions=[cond("abscess", "L02.91"), cond("cut", "S61.412A")],
        procedures=[proc("p1", "12001"), proc("p2", "10060")],  # stores list by id
        dx=["L02.91", "S61.412A"],
        lines=[
            ("99213", ("25",), 1, (1, 2)),
            ("12001", ("51",), 1, (1, 2)),
            ("10060", (), 1, (1, 2)),
        ],
        info={"multiple-procedure"},
        prices=[E99213, share(R12001, 0.5), I10060],
    ),
    CmsCase(
        # Assistant indicator 2: an assistant at surgery (80) is paid 16 %.
        "cms_assistant_at_surgery_is_16_percent",
        # Issue 15: an E/M on the day of a 090-global surgery is the decision for surgery (57).
        conditions=[cond("oa", "M17.11")],
        procedures=[with_modifier(proc("tka", "27447"), "80")],
        dx=["M17.11"],
        lines=[("99213", ("57",), 1, (1,)), ("27447", ("80",), 1, (1,))],
        info={"assistant-priced"},
        prices=[E99213, share(KNEE, 0.16)],
    ),
    CmsCase(
        # Assistant indicator 1: statutory payment restriction, never paid.
        "cms_assistant_not_allowed_is_an_error",
        # Issue 15: no separately identifiable problem besides the procedure's indication,
        # so no E/M (MCPM Ch. 12 sec. 40.1); the PFS rule this case tests is unchanged.
        conditions=[cond("cut", "S61.412A")],
        procedures=[with_modifier(proc("rep", "12001"), "80")],
        dx=["S61.412A"],
        lines=[("12001", ("80",), 1, (1,))],
        status="draft",
        edits={"assistant-not-allowed", "em-procedure-only"},
        prices=[0.0],
    ),
    CmsCase(
        # Co-surgeon indicator 1: co-surgeons (62) need documentation; 62.5 % each.
        "cms_co_surgeons_need_documentation",
        # Issue 15: an E/M on the day of a 090-global surgery is the decision for surgery (57).
        conditions=[cond("oa", "M17.11")],
        procedures=[with_modifier(proc("tka", "27447"), "62")],
        dx=["M17.11"],
        lines=[("99213", ("57",), 1, (1,)), ("27447", ("62",), 1, (1,))],
        edits={"co-surgeon-documentation"},
        prices=[E99213, share(KNEE, 0.625)],
    ),
    CmsCase(
        # MUE 1 with MAI 2 (policy): units are summed over the lines of the date of service;
        # 2 repairs (left and right) exceed it and cannot be overridden.
        "cms_mue_mai_2_sums_units_per_day_and_is_an_error",
        # Issue 15: no separately identifiable problem besides the procedure's indication,
        # so no E/M (MCPM Ch. 12 sec. 40.1); the PFS rule this case tests is unchanged.
        conditions=[cond("cut", "S61.412A")],
        procedures=[proc("l", "12001", site="left hand"), proc("r", "12001", site="right hand")],
        dx=["S61.412A"],
        lines=[
            ("12001", ("LT",), 1, (1,)),
            ("12001", ("RT", "51"), 1, (1,)),
        ],
        status="draft",
        edits={"mue-dos-policy", "em-procedure-only"},
        prices=[R12001, share(R12001, 0.5)],
    ),
    CmsCase(
        # AOC type 1: 64484 (each additional level) without its primary 64483.
        "cms_addon_type_1_without_its_primary_is_an_error",
        conditions=[cond("rad", "M54.16")],
        procedures=[proc("add", "64484")],
        dx=["M54.16"],
        lines=[("99213", (), 1, (1,)), ("64484", (), 1, (1,))],
        status="draft",
        edits={"addon-without-primary"},
    ),
    CmsCase(
        # ... with its primary it is clean; the add-on (ZZZ) takes no 51, the primary's
        # 0-day global puts 25 on the visit.
        "cms_addon_with_its_primary_is_clean",
        # Issue 15: no separately identifiable problem besides the procedure's indication,
        # so no E/M (MCPM Ch. 12 sec. 40.1); the PFS rule this case tests is unchanged.
        conditions=[cond("rad", "M54.16")],
        procedures=[proc("p1", "64483"), proc("p2", "64484")],
        dx=["M54.16"],
        edits={"em-procedure-only"},
        lines=[("64483", (), 1, (1,)), ("64484", (), 1, (1,))],
        prices=[pfs(1.85, 5.91, 0.17), pfs(0.98, 2.46, 0.08)],
    ),
    CmsCase(
        # AOC type 3: 88311 with none of the primaries CMS lists: a warning (the MAC may
        # accept another).
        "cms_addon_type_3_without_a_listed_primary_warns",
        conditions=[cond("htn", "I10")],
        procedures=[proc("decal", "88311")],
        dx=["I10"],
        lines=[("99213", (), 1, (1,)), ("88311", (), 1, (1,))],
        edits={"addon-primary-unlisted"},
    ),
    CmsCase(
        # HCPCS January 2026: J0171 was terminated 2025-06-30.
        "cms_terminated_hcpcs_code_is_an_error",
        conditions=[cond("ana", "T78.2XXA")],
        procedures=[proc("epi", "J0171", HCPCS)],
        dx=["T78.2XXA"],
        lines=[("99213", (), 1, (1,)), ("J0171", (), 1, (1,))],
        status="draft",
        edits={"code-not-effective"},
    ),
    CmsCase(
        # CPT 2026 deleted 55700: RVU26C has no row for it, so it is not a code in force.
        "cms_cpt_code_absent_from_rvu26c_is_an_error",
        conditions=[cond("psa", "R97.20")],
        procedures=[proc("bx", "55700")],
        dx=["R97.20"],
        lines=[("99213", (), 1, (1,)), ("55700", (), 1, (1,))],
        status="draft",
        edits={"code-unknown"},
    ),
    CmsCase(
        # ICD-10-CM FY2027 (from 2026-10-01): D69.11 is new.
        "cms_fy2027_new_code_is_valid_from_october_1",
        encounter=on("2026-10-05"),
        conditions=[cond("gt", "D69.11")],
        dx=["D69.11"],
        lines=[("99213", (), 1, (1,))],
    ),
    CmsCase(
        # ... and D69.1 became a header in FY2027: an error on 2026-10-05.
        "cms_fy2027_former_code_now_a_header_is_an_error",
        encounter=on("2026-10-05"),
        conditions=[cond("pd", "D69.1")],
        dx=["D69.1"],
        lines=[("99213", (), 1, (1,))],
        status="draft",
        edits={"code-not-billable"},
    ),
    CmsCase(
        # ... while D69.11 before 2026-10-01 is not yet effective.
        "cms_fy2027_code_before_october_1_is_not_effective",
        encounter=on("2026-09-28"),
        conditions=[cond("gt", "D69.11")],
        dx=["D69.11"],
        lines=[("99213", (), 1, (1,))],
        status="draft",
        edits={"code-not-effective"},
    ),
    CmsCase(
        # NCCI PTP indicator 1 with 59 stated by the EHR: a distinct service, not held.
        "cms_ncci_indicator_1_with_modifier_59_is_not_held",
        # Issue 15: no separately identifiable problem besides the procedure's indication,
        # so no E/M (MCPM Ch. 12 sec. 40.1); the PFS rule this case tests is unchanged.
        conditions=[cond("bleed", "K92.1")],
        procedures=[proc("colo", "45380"), with_modifier(proc("colo2", "45378"), "59")],
        dx=["K92.1"],
        edits={"em-procedure-only"},
        lines=[
            ("45380", (), 1, (1,)),
            ("45378", ("59", "51"), 1, (1,)),
        ],
        info={"ncci-distinct-service"},
    ),
]
