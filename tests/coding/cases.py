"""The gold set: hand-coded encounters and the claim a certified coder would produce.

Each case gives the clinical resources (an Encounter on 2026-03-02 unless said otherwise,
its Patient, Conditions, Procedures, Coverages; ``established`` says whether the patient
had a finished visit with the same organization in the 3 years before) and what is
expected: the ICD-10-CM codes in order, the lines (code, modifiers, units, diagnosis
pointers), the claim status and the edit codes (warnings and errors, exactly; information
issues listed in ``info`` must be present). Conditions are recorded in list order unless a
case says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCT = "http://snomed.info/sct"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
CPT = "http://www.ama-assn.org/go/cpt"
DOS = "2026-03-02"


def at(minute: int, day: str = DOS) -> str:
    return f"{day}T{9 + minute // 60:02d}:{minute % 60:02d}:00Z"


def cond(
    cid: str,
    code: str,
    system: str = ICD,
    *,
    verification: str | None = None,
    abated: str | None = None,
    recorded: str | None = None,
    linked: bool = True,
) -> dict[str, Any]:
    c: dict[str, Any] = {
        "resourceType": "Condition",
        "id": cid,
        "code": {"coding": [{"system": system, "code": code}]},
    }
    if verification:
        c["verificationStatus"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": verification,
                }
            ]
        }
    if abated:
        c["abatementDateTime"] = abated
        # R4 con-4: an abated condition is inactive, resolved or in remission.
        c["clinicalStatus"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "resolved",
                }
            ]
        }
    if recorded:
        c["recordedDate"] = recorded
    c["_linked"] = linked
    return c


def proc(
    pid: str,
    code: str,
    system: str = CPT,
    *,
    status: str = "completed",
    site: str | None = None,
    day: str = DOS,
    reason: str | None = None,
) -> dict[str, Any]:
    p: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": pid,
        "status": status,
        "code": {"coding": [{"system": system, "code": code}]},
        "performedDateTime": f"{day}T09:10:00Z",
    }
    if site:
        p["bodySite"] = [{"text": site}]
    if reason:
        p["reasonReference"] = [{"reference": f"Condition/{reason}"}]
    return p


def coverage(cid: str, order: int, start: str = "2025-01-01", end: str | None = None) -> dict:
    period = {"start": start, **({"end": end} if end else {})}
    return {
        "resourceType": "Coverage",
        "id": cid,
        "status": "active",
        "order": order,
        "period": period,
        "payor": [{"display": f"Payer {cid}"}],
    }


@dataclass
class Case:
    name: str
    minutes: int = 20
    enc_class: str = "AMB"
    types: list[str] = field(default_factory=list)  # SNOMED encounter types
    established: bool = True
    birth: str | None = "1970-05-01"
    sex: str = "male"
    conditions: list[dict[str, Any]] = field(default_factory=list)
    procedures: list[dict[str, Any]] = field(default_factory=list)
    coverages: list[dict[str, Any]] = field(default_factory=list)
    encounter: dict[str, Any] = field(default_factory=dict)  # extra Encounter elements
    # expectations
    dx: list[str] = field(default_factory=list)
    lines: list[tuple[str, tuple[str, ...], int, tuple[int, ...]]] = field(default_factory=list)
    status: str = "active"
    edits: set[str] = field(default_factory=set)
    info: set[str] = field(default_factory=set)
    claim_type: str = "professional"
    pos: str = "11"
    insurance: list[str] | None = None  # Coverage ids in order
    pcs: list[str] = field(default_factory=list)
    days: int = 0  # inpatient length of stay (days after DOS the encounter ends)


DM = cond("dm", "44054006", SCT)  # type 2 diabetes -> E11.9
HTN = cond("htn", "I10")

CASES: list[Case] = [
    # --- E/M by time, established ---
    Case("est_20min_99213", conditions=[DM], dx=["E11.9"], lines=[("99213", (), 1, (1,))]),
    Case("est_9min_99211", minutes=9, conditions=[HTN], dx=["I10"], lines=[("99211", (), 1, (1,))]),
    Case(
        "est_10min_99212", minutes=10, conditions=[HTN], dx=["I10"], lines=[("99212", (), 1, (1,))]
    ),
    Case(
        "est_30min_99214", minutes=30, conditions=[HTN], dx=["I10"], lines=[("99214", (), 1, (1,))]
    ),
    Case(
        "est_45min_99215", minutes=45, conditions=[HTN], dx=["I10"], lines=[("99215", (), 1, (1,))]
    ),
    # --- E/M by time, new ---
    Case(
        "new_15min_99202",
        minutes=15,
        established=False,
        conditions=[HTN],
        dx=["I10"],
        lines=[("99202", (), 1, (1,))],
    ),
    Case(
        "new_30min_99203",
        minutes=30,
        established=False,
        conditions=[HTN],
        dx=["I10"],
        lines=[("99203", (), 1, (1,))],
    ),
    Case(
        "new_50min_99204",
        minutes=50,
        established=False,
        conditions=[HTN],
        dx=["I10"],
        lines=[("99204", (), 1, (1,))],
    ),
    Case(
        "new_75min_99205",
        minutes=75,
        established=False,
        conditions=[HTN],
        dx=["I10"],
        # Corrected (issue 15): 75 minutes is 15 beyond 99205's 60: CPT 99417 x 1 (self-pay
        # follows CPT; Medicare would use G2212 from 89 minutes).
        lines=[("99205", (), 1, (1,)), ("99417", (), 1, (1,))],
    ),
    Case(
        "new_under_15_is_review",
        minutes=12,
        established=False,
        conditions=[HTN],
        dx=["I10"],
        lines=[("99202", (), 1, (1,))],
        status="draft",
        edits={"em-new-under-15"},
    ),
    Case(
        "length_wins_over_period",
        minutes=10,
        conditions=[HTN],
        dx=["I10"],
        encounter={
            "length": {
                "value": 35,
                "unit": "min",
                "system": "http://unitsofmeasure.org",
                "code": "min",
            }
        },
        lines=[("99214", (), 1, (1,))],
    ),
    # --- preventive ---
    Case(
        "preventive_child_3y_est",
        types=["410620009"],
        birth="2022-11-10",
        sex="female",
        conditions=[cond("z00", "Z00.129")],
        dx=["Z00.129"],
        lines=[("99392", (), 1, (1,))],
    ),
    Case(
        "preventive_adult_45_new",
        types=["162673000"],
        established=False,
        birth="1980-06-01",
        conditions=[cond("z00", "Z00.00")],
        dx=["Z00.00"],
        lines=[("99386", (), 1, (1,))],
    ),
    Case(
        "preventive_senior_70_est",
        types=["185349003"],
        birth="1955-01-15",
        conditions=[cond("z00", "Z00.00")],
        dx=["Z00.00"],
        lines=[("99397", (), 1, (1,))],
    ),
    Case(
        "preventive_infant_new",
        types=["410620009"],
        established=False,
        birth="2025-12-01",
        conditions=[cond("z00", "Z00.121")],
        dx=["Z00.121"],
        lines=[("99381", (), 1, (1,))],
    ),
    Case(
        "preventive_with_problem_em_25",
        types=["162673000", "185345009"],
        minutes=20,
        birth="1975-01-01",
        conditions=[cond("z00", "Z00.01"), HTN],
        dx=["Z00.01", "I10"],
        # The total time includes the preventive service, which CPT excludes: review.
        edits={"em-time-includes-preventive"},
        # Corrected (issue 15): the problem E/M points first to the problem it treats, never
        # to the routine-exam Z00 (CPT modifier 25 / CMS: the separately identifiable problem).
        lines=[("99396", (), 1, (1, 2)), ("99213", ("25",), 1, (2, 1))],
    ),
    # --- emergency ---
    Case(
        "ed_visit_levelled_by_rule",
        enc_class="EMER",
        conditions=[cond("uri", "J06.9")],
        dx=["J06.9"],
        lines=[("99282", (), 1, (1,))],
        edits={"ed-level-review"},
        pos="23",
    ),
    Case(
        "ed_imaging_gets_26",
        enc_class="EMER",
        conditions=[cond("pn", "J18.9")],
        procedures=[proc("cxr", "71046")],
        dx=["J18.9"],
        lines=[("99283", (), 1, (1,)), ("71046", ("26",), 1, (1,))],
        edits={"ed-level-review"},
        pos="23",
    ),
    # --- diagnosis sources and order ---
    Case(
        "rank_1_first",
        conditions=[HTN, cond("hld", "E78.5")],
        encounter={"diagnosis": [{"condition": {"reference": "Condition/hld"}, "rank": 1}]},
        dx=["E78.5", "I10"],
        lines=[("99213", (), 1, (1, 2))],
    ),
    Case(
        "billing_use_first",
        conditions=[HTN, cond("hld", "E78.5")],
        encounter={
            "diagnosis": [
                {
                    "condition": {"reference": "Condition/hld"},
                    "use": {"coding": [{"code": "billing"}]},
                }
            ]
        },
        dx=["E78.5", "I10"],
        lines=[("99213", (), 1, (1, 2))],
    ),
    Case(
        "reason_reference_first",
        conditions=[HTN, cond("cough", "R05.9")],
        encounter={"reasonReference": [{"reference": "Condition/cough"}]},
        dx=["R05.9", "I10"],
        lines=[("99213", (), 1, (1, 2))],
    ),
    Case(
        "reason_code_only",
        encounter={"reasonCode": [{"coding": [{"system": ICD, "code": "J45.909"}]}]},
        dx=["J45.909"],
        lines=[("99213", (), 1, (1,))],
    ),
    Case(
        "recorded_date_order",
        conditions=[
            cond("later", "E78.5", recorded="2026-03-02T09:05:00Z"),
            cond("earlier", "I10", recorded="2026-03-02T09:01:00Z"),
        ],
        dx=["I10", "E78.5"],
        lines=[("99213", (), 1, (1, 2))],
    ),
    Case(
        "diagnosis_only_in_encounter_diagnosis",
        conditions=[cond("hld", "E78.5", linked=False)],
        encounter={"diagnosis": [{"condition": {"reference": "Condition/hld"}, "rank": 1}]},
        dx=["E78.5"],
        lines=[("99213", (), 1, (1,))],
    ),
    # --- exclusions ---
    Case(
        "refuted_and_entered_in_error_excluded",
        conditions=[
            HTN,
            cond("r", "E78.5", verification="refuted"),
            cond("x", "J06.9", verification="entered-in-error"),
        ],
        dx=["I10"],
        lines=[("99213", (), 1, (1,))],
        info={"dx-excluded"},
    ),
    Case(
        "resolved_before_encounter_excluded",
        conditions=[HTN, cond("old", "J06.9", abated="2026-02-01")],
        dx=["I10"],
        lines=[("99213", (), 1, (1,))],
        info={"dx-excluded"},
    ),
    Case(
        "uncertain_not_coded_outpatient",
        conditions=[cond("cough", "R05.9"), cond("pn", "J18.9", verification="provisional")],
        dx=["R05.9"],
        lines=[("99213", (), 1, (1,))],
        info={"dx-uncertain-excluded"},
    ),
    Case(
        "uncertain_coded_inpatient",
        enc_class="IMP",
        days=2,
        conditions=[cond("pn", "J18.9", verification="provisional")],
        encounter={"diagnosis": [{"condition": {"reference": "Condition/pn"}, "rank": 1}]},
        dx=["J18.9"],
        lines=[("0120", (), 2, (1,))],
        claim_type="institutional",
        pos="21",
    ),
    # --- code validity and conflicts ---
    Case(
        "header_code_is_error",
        conditions=[cond("dm", "E11")],
        dx=["E11"],
        lines=[("99213", (), 1, (1,))],
        status="draft",
        edits={"code-not-billable"},
    ),
    Case(
        "unknown_code_is_error",
        conditions=[cond("bad", "Q99.99X")],
        dx=["Q99.99X"],
        lines=[("99213", (), 1, (1,))],
        status="draft",
        edits={"code-invalid"},
    ),
    Case(
        "pregnancy_code_male_conflict",
        conditions=[cond("preg", "Z34.00")],
        dx=["Z34.00"],
        lines=[("99213", (), 1, (1,))],
        status="draft",
        edits={"age-sex-conflict"},
    ),
    Case(
        "code_not_yet_effective",
        conditions=[cond("dm", "E11.A")],
        encounter={"period": {"start": "2025-05-01T09:00:00Z", "end": "2025-05-01T09:20:00Z"}},
        dx=["E11.A"],
        lines=[("99213", (), 1, (1,))],
        status="draft",
        edits={"code-not-effective"},
    ),
    # Corrected (issue 15): G63 with E11.42 was a wrong pair (G63 Excludes1 diabetic
    # polyneuropathy, E08-E13 with .42); an etiology/manifestation pair shows the rule.
    Case(
        "manifestation_never_first",
        conditions=[cond("dem", "F02.80"), cond("alz", "G30.9")],
        encounter={"diagnosis": [{"condition": {"reference": "Condition/dem"}, "rank": 1}]},
        dx=["G30.9", "F02.80"],
        lines=[("99213", (), 1, (1, 2))],
    ),
    Case(
        "external_cause_never_first",
        conditions=[cond("fall", "W19.XXXA"), cond("fx", "S72.001A")],
        encounter={"diagnosis": [{"condition": {"reference": "Condition/fall"}, "rank": 1}]},
        dx=["S72.001A", "W19.XXXA"],
        lines=[("99213", (), 1, (1, 2))],
    ),
    Case(
        "duplicates_collapse",
        conditions=[DM, cond("dm2", "E11.9")],
        dx=["E11.9"],
        lines=[("99213", (), 1, (1,))],
    ),
    Case(
        "at_most_12_diagnoses",
        conditions=[
            cond(f"c{i}", c)
            for i, c in enumerate(
                [
                    "I10",
                    "E78.5",
                    "J45.909",
                    # Corrected (issue 15): R05.9 and R51.9 were integral to J45.909/J06.9
                    # and G43.909 (I.B.5); two unrelated codes keep the list at 14.
                    "E55.9",
                    "J06.9",
                    "E11.9",
                    "M54.50",
                    "K21.9",
                    "F41.1",
                    "G43.909",
                    "N39.0",
                    "L30.9",
                    "D64.9",
                    "H10.9",
                ]
            )
        ],
        dx=[
            "I10",
            "E78.5",
            "J45.909",
            "E55.9",
            "J06.9",
            "E11.9",
            "M54.50",
            "K21.9",
            "F41.1",
            "G43.909",
            "N39.0",
            "L30.9",
        ],
        lines=[("99213", (), 1, (1, 2, 3, 4))],
        edits={"dx-over-limit"},
    ),
    Case(
        "unmapped_snomed_condition",
        conditions=[HTN, cond("odd", "999999999", SCT)],
        dx=["I10"],
        lines=[("99213", (), 1, (1,))],
        status="draft",
        edits={"unmapped"},
    ),
    Case(
        "no_diagnosis_is_error",
        lines=[("99213", (), 1, ())],
        status="draft",
        edits={"no-diagnosis"},
    ),
    # --- procedures ---
    Case(
        "procedure_line_and_not_done_skipped",
        conditions=[HTN],
        procedures=[proc("ecg", "93000"), proc("ecg2", "94010", status="not-done")],
        dx=["I10"],
        lines=[("99213", (), 1, (1,)), ("93000", (), 1, (1,))],
    ),
    # Corrected (issue 15): an injection visit with no other problem has no E/M (NCCI
    # Policy Manual Ch. XI); the indication is inferred, so the coder is asked to confirm.
    Case(
        "repeats_become_units",
        conditions=[HTN],
        procedures=[proc("inj1", "96372"), proc("inj2", "96372")],
        dx=["I10"],
        lines=[("96372", (), 2, (1,))],
        edits={"em-procedure-only"},
    ),
    Case(
        "mue_caps_units",
        conditions=[cond("asthma", "J45.909")],
        procedures=[proc(f"spiro{i}", "94010") for i in range(3)],
        dx=["J45.909"],
        # Corrected (issue 14): the illustrative MUE capped 94010 per line; the CMS MUE
        # table (2026Q2) gives 94010 an MUE of 1 with MAI 3, a clinical date-of-service
        # limit: the units stay and the claim is flagged for review, not capped.
        lines=[("99213", (), 1, (1,)), ("94010", (), 3, (1,))],
        edits={"mue-dos-clinical"},
    ),
    Case(
        "ncci_indicator_0_removes_column_2",
        conditions=[HTN],
        procedures=[proc("cmp", "80053"), proc("bmp", "80048")],
        dx=["I10"],
        lines=[("99213", (), 1, (1,)), ("80053", (), 1, (1,))],
        edits={"ncci-removed"},
    ),
    Case(
        "ncci_indicator_1_flags_and_25",
        conditions=[cond("bleed", "K92.1")],
        procedures=[proc("colo", "45380"), proc("colo2", "45378")],
        dx=["K92.1"],
        # Corrected (issue 15): the visit is for the endoscopy (000 global) and no other problem
        # was addressed: no E/M (MCPM Ch. 12 sec. 40.1). Corrected (issue 14): an NCCI
        # indicator-1 pair without a modifier holds the claim (draft + review Task), and as
        # the lower-priced second procedure under RVU26C's indicators 45378 carries 51.
        lines=[("45380", (), 1, (1,)), ("45378", ("51",), 1, (1,))],
        status="draft",
        edits={"ncci-review", "em-procedure-only"},
    ),
    # Corrected (issue 15): modifier 25 needs a separately identifiable problem (here the
    # hypertension) besides the repair's indication; without one there is no E/M.
    Case(
        # (RVU26C gives 12001 a 0-day global, not 10: it is a minor procedure either way.)
        "minor_procedure_10_day_global_25",
        conditions=[cond("cut", "S61.412A"), HTN],
        procedures=[proc("rep", "12001", reason="cut")],
        dx=["S61.412A", "I10"],
        lines=[("99213", ("25",), 1, (1, 2)), ("12001", (), 1, (1, 2))],
    ),
    Case(
        "major_procedure_no_25",
        conditions=[cond("oa", "M17.11")],
        procedures=[proc("tka", "27447", site="right knee")],
        dx=["M17.11"],
        # Corrected (issue 15): the E/M on the day of a 090-global surgery is the decision for
        # surgery: modifier 57 (MCPM Ch. 12 sec. 40.2.A.4), not 25.
        lines=[("99213", ("57",), 1, (1,)), ("27447", ("RT",), 1, (1,))],
    ),
    Case(
        "laterality_left_and_bilateral",
        conditions=[cond("cut", "S61.412A"), cond("asthma", "J45.909")],
        procedures=[
            proc("a", "93000", site="left arm"),
            proc("b", "94010", site="bilateral lungs"),
        ],
        dx=["S61.412A", "J45.909"],
        # Corrected (issue 14): RVU26C gives 94010 bilateral indicator 0 (no bilateral
        # adjustment), so 50 is not reported: removed, with a warning.
        lines=[
            ("99213", (), 1, (1, 2)),
            ("93000", ("LT",), 1, (1, 2)),
            ("94010", (), 1, (2, 1)),
        ],
        edits={"bilateral-not-allowed"},
    ),
    Case(
        "medical_necessity_flagged",
        conditions=[HTN],
        procedures=[proc("mam", "77067")],
        dx=["I10"],
        lines=[("99213", (), 1, (1,)), ("77067", (), 1, (1,))],
        edits={"medical-necessity"},
        sex="female",
    ),
    Case(
        "medical_necessity_met_pointer_first",
        sex="female",
        conditions=[HTN, cond("scr", "Z12.31")],
        procedures=[proc("mam", "24623002", SCT)],
        dx=["I10", "Z12.31"],
        lines=[("99213", (), 1, (1, 2)), ("77067", (), 1, (2, 1))],
    ),
    Case(
        "procedure_reason_pointer_first",
        conditions=[HTN, cond("hld", "E78.5")],
        procedures=[proc("ecg", "93000", reason="hld")],
        dx=["I10", "E78.5"],
        lines=[("99213", (), 1, (1, 2)), ("93000", (), 1, (2, 1))],
    ),
    Case(
        "unmapped_snomed_procedure",
        conditions=[HTN],
        procedures=[proc("odd", "999999999", SCT)],
        dx=["I10"],
        lines=[("99213", (), 1, (1,))],
        status="draft",
        edits={"unmapped"},
    ),
    Case(
        "not_reportable_procedure_is_information",
        conditions=[HTN],
        procedures=[proc("exam", "5880005", SCT)],
        dx=["I10"],
        lines=[("99213", (), 1, (1,))],
        info={"not-reportable"},
    ),
    Case(
        "em_procedure_not_duplicated",
        conditions=[HTN],
        procedures=[proc("hx", "14736009", SCT)],
        dx=["I10"],
        lines=[("99213", (), 1, (1,))],
        info={"em-from-procedure"},
    ),
    # --- payer data ---
    Case(
        "missing_provider_is_error",
        conditions=[HTN],
        established=False,  # without an organization "established" cannot hold
        encounter={"serviceProvider": None, "participant": None},
        dx=["I10"],
        lines=[("99202", (), 1, (1,))],
        status="draft",
        edits={"missing-provider"},
    ),
    Case(
        "missing_birth_date_is_error",
        birth=None,
        conditions=[HTN],
        dx=["I10"],
        lines=[("99213", (), 1, (1,))],
        status="draft",
        edits={"missing-patient-data"},
    ),
    Case(
        "coverages_by_order",
        conditions=[HTN],
        coverages=[
            coverage("sec", 2),
            coverage("pri", 1),
            coverage("old", 1, "2020-01-01", "2024-12-31"),
        ],
        dx=["I10"],
        lines=[("99213", (), 1, (1,))],
        insurance=["pri", "sec"],
    ),
    Case(
        "self_pay_when_no_coverage",
        conditions=[HTN],
        dx=["I10"],
        lines=[("99213", (), 1, (1,))],
        info={"self-pay"},
        insurance=[],
    ),
    # --- institutional and unsupported settings ---
    Case(
        "inpatient_institutional_pcs",
        enc_class="IMP",
        days=3,
        conditions=[cond("app", "K35.80")],
        procedures=[proc("appx", "80146002", SCT)],
        dx=["K35.80"],
        lines=[("0120", (), 3, (1,)), ("44950", (), 1, (1,))],
        claim_type="institutional",
        pos="21",
        pcs=["0DTJ0ZZ"],
    ),
    Case(
        "unsupported_class_is_error",
        enc_class="SS",
        conditions=[HTN],
        dx=["I10"],
        lines=[],
        status="draft",
        edits={"em-no-rule"},
    ),
]
