"""Gold cases for the coder-grade rules (issue 15), each with the rule it tests.

Same shape as ``cases.py`` (an Encounter on 2026-03-02 unless said otherwise); every case
names its source in ``why``: the ICD-10-CM Official Guidelines section (FY2026/FY2027),
the CPT E/M rule or the CMS/NCCI policy a certified coder would cite.
"""

from __future__ import annotations

from typing import Any

from tests.coding.cases import CPT, ICD, SCT, Case, cond, coverage, proc


def site(c: dict[str, Any], side: str) -> dict[str, Any]:
    """A Condition with a body site side (left/right) in words."""
    c = dict(c)
    c["bodySite"] = [{"text": f"{side} ear"}]
    return c


def why(case: Case, rationale: str) -> Case:
    case.rationale = rationale  # type: ignore[attr-defined]
    return case


HTN = cond("htn", "I10")
DX_CASES: list[Case] = [
    # --- combination codes and presumed links (I.A.15 "with", I.C.4.a, I.C.9.a) ---
    why(
        Case(
            "dm2_with_polyneuropathy_is_e11_42",
            conditions=[cond("dm", "E11.9"), cond("pn", "G62.9")],
            dx=["E11.42"],
            lines=[("99213", (), 1, (1,))],
            info={"dx-combined"},
        ),
        "I.A.15 'with': diabetes and polyneuropathy linked; index Diabetes, with, polyneuropathy",
    ),
    why(
        Case(
            "dm1_with_polyneuropathy_is_e10_42",
            conditions=[cond("dm", "E10.9"), cond("pn", "G62.9")],
            dx=["E10.42"],
            lines=[("99213", (), 1, (1,))],
        ),
        "I.A.15 'with' for type 1 diabetes (E10.42)",
    ),
    why(
        Case(
            "g63_is_not_coded_with_e11_42",
            conditions=[cond("dm", "E11.42"), cond("g63", "G63")],
            dx=["E11.42"],
            lines=[("99213", (), 1, (1,))],
            info={"dx-combined"},
        ),
        "G63 Excludes1 diabetic polyneuropathy (E08-E13 with .42)",
    ),
    why(
        Case(
            "dm2_with_ckd_is_e11_22_plus_stage",
            conditions=[cond("dm", "E11.9"), cond("ckd", "N18.30")],
            dx=["E11.22", "N18.30"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "I.A.15; E11.22 'use additional code to identify stage of CKD (N18.1-N18.6)'",
    ),
    why(
        Case(
            "dm2_hyperglycemia_is_e11_65",
            conditions=[cond("dm", "E11.9"), cond("hg", "R73.9")],
            dx=["E11.65"],
            lines=[("99213", (), 1, (1,))],
        ),
        "Index Diabetes, with, hyperglycemia E11.65; R73.9 Excludes1 diabetes",
    ),
    why(
        Case(
            "dm2_pvd_is_e11_51",
            conditions=[cond("dm", "E11.9"), cond("pvd", "I73.9")],
            dx=["E11.51"],
            lines=[("99213", (), 1, (1,))],
        ),
        "Index Diabetes, with, peripheral angiopathy E11.51",
    ),
    why(
        Case(
            "dm2_gastroparesis_keeps_both",
            conditions=[cond("dm", "E11.9"), cond("gp", "K31.84")],
            dx=["E11.43", "K31.84"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "Index Diabetes, with, gastroparesis E11.43 [K31.84]: both codes, etiology first",
    ),
    why(
        Case(
            "dm2_foot_ulcer_with_site",
            conditions=[cond("dm", "E11.9"), cond("ulc", "L97.509")],
            dx=["E11.621", "L97.509"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "Index Diabetes, with, foot ulcer E11.621; use additional code L97.4-/L97.5- for the site",
    ),
    why(
        Case(
            "htn_with_ckd_stage_4_is_i12_9",
            conditions=[HTN, cond("ckd", "N18.4")],
            dx=["I12.9", "N18.4"],
            lines=[("99213", (), 1, (1, 2))],
            info={"dx-combined"},
        ),
        "I.C.9.a.2: hypertension with CKD is presumed linked, I12.9 + N18.4",
    ),
    why(
        Case(
            "htn_with_esrd_is_i12_0",
            conditions=[HTN, cond("ckd", "N18.6")],
            dx=["I12.0", "N18.6"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "I.C.9.a.2: stage 5 or ESRD takes I12.0",
    ),
    why(
        Case(
            "htn_with_heart_failure_is_i11_0_plus_type",
            conditions=[HTN, cond("hf", "I50.22")],
            dx=["I11.0", "I50.22"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "I.C.9.a.1: hypertension with heart failure is presumed linked; use additional code I50.-",
    ),
    why(
        Case(
            "htn_with_heart_disease_is_i11_9",
            conditions=[HTN, cond("cm", "I51.7")],
            dx=["I11.9", "I51.7"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "I.C.9.a.1: I51.4-I51.7, I51.89, I51.9 with hypertension are presumed linked (I11.9)",
    ),
    why(
        Case(
            "htn_heart_failure_and_ckd_is_i13_0",
            conditions=[HTN, cond("hf", "I50.9"), cond("ckd", "N18.30")],
            dx=["I13.0", "I50.9", "N18.30"],
            lines=[("99213", (), 1, (1, 2, 3))],
        ),
        "I.C.9.a.3: hypertension with heart failure and CKD stage 1-4 is I13.0 + I50.- + N18.-",
    ),
    why(
        Case(
            "htn_heart_failure_and_esrd_is_i13_2",
            conditions=[HTN, cond("hf", "I50.9"), cond("ckd", "N18.6")],
            dx=["I13.2", "I50.9", "N18.6"],
            lines=[("99213", (), 1, (1, 2, 3))],
        ),
        "I.C.9.a.3: with heart failure and stage 5/ESRD, I13.2",
    ),
    why(
        Case(
            "htn_heart_disease_and_ckd_is_i13_10",
            conditions=[HTN, cond("cm", "I51.7"), cond("ckd", "N18.2")],
            dx=["I13.10", "I51.7", "N18.2"],
            lines=[("99213", (), 1, (1, 2, 3))],
        ),
        "I.C.9.a.3: heart disease without failure and CKD stage 1-4, I13.10",
    ),
    why(
        Case(
            "dm_and_htn_with_ckd_both_combinations",
            conditions=[cond("dm", "E11.9"), HTN, cond("ckd", "N18.31")],
            dx=["E11.22", "I12.9", "N18.31"],
            lines=[("99213", (), 1, (1, 2, 3))],
        ),
        "I.C.9.a.2 and I.A.15: CKD linked to both; N18 'code first' diabetic and hypertensive CKD",
    ),
    why(
        Case(
            "i10_not_coded_with_i12",
            conditions=[HTN, cond("h", "I12.9"), cond("ckd", "N18.4")],
            dx=["I12.9", "N18.4"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "I10 Excludes1 hypertensive CKD (I12.-): I10 is not coded with it",
    ),
    why(
        Case(
            "i11_0_without_heart_failure_type_warns",
            conditions=[cond("h", "I11.0")],
            dx=["I11.0"],
            lines=[("99213", (), 1, (1,))],
            edits={"dx-additional-code"},
        ),
        "Tabular I11.0: use additional code to identify type of heart failure (I50.-)",
    ),
    why(
        Case(
            "ckd_code_first_moves_etiology_ahead",
            conditions=[cond("ckd", "N18.4"), cond("h", "I12.9")],
            encounter={"diagnosis": [{"condition": {"reference": "Condition/ckd"}, "rank": 1}]},
            dx=["I12.9", "N18.4"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "N18 'code first any associated hypertensive CKD (I12.-, I13.-)' (I.A.13)",
    ),
    why(
        Case(
            "ckd_alone_may_be_first",
            conditions=[cond("ckd", "N18.4"), cond("hld", "E78.5")],
            dx=["N18.4", "E78.5"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "A conditional 'code first any associated' note does not apply without the etiology",
    ),
    # --- integral signs and symptoms (I.B.5, IV.D) ---
    why(
        Case(
            "fever_with_pneumonia_not_coded",
            conditions=[cond("f", "R50.9"), cond("pn", "J18.9")],
            dx=["J18.9"],
            lines=[("99213", (), 1, (1,))],
            info={"dx-integral-symptom"},
        ),
        "I.B.5 / IV.D: fever is routinely associated with pneumonia",
    ),
    why(
        Case(
            "sore_throat_with_strep_not_coded",
            conditions=[cond("st", "R07.0"), cond("strep", "J02.0")],
            dx=["J02.0"],
            lines=[("99213", (), 1, (1,))],
        ),
        "I.B.5: throat pain is integral to streptococcal pharyngitis",
    ),
    why(
        Case(
            "dyspnea_with_copd_not_coded",
            conditions=[cond("sob", "R06.00"), cond("copd", "J44.9")],
            dx=["J44.9"],
            lines=[("99213", (), 1, (1,))],
        ),
        "I.B.5: shortness of breath is integral to COPD",
    ),
    why(
        Case(
            "headache_with_migraine_not_coded",
            conditions=[cond("ha", "R51.9"), cond("mig", "G43.909")],
            dx=["G43.909"],
            lines=[("99213", (), 1, (1,))],
        ),
        "I.B.5: headache is integral to migraine",
    ),
    why(
        Case(
            "nausea_with_gastroenteritis_not_coded",
            conditions=[cond("n", "R11.0"), cond("ge", "A09")],
            dx=["A09"],
            lines=[("99213", (), 1, (1,))],
        ),
        "I.B.5: nausea is integral to gastroenteritis",
    ),
    why(
        Case(
            "dysuria_with_cystitis_not_coded",
            conditions=[cond("d", "R30.0"), cond("c", "N30.00")],
            dx=["N30.00"],
            lines=[("99213", (), 1, (1,))],
        ),
        "I.B.5: painful urination is integral to cystitis",
    ),
    why(
        Case(
            "symptom_without_definitive_dx_is_coded",
            conditions=[cond("cough", "R05.9"), HTN],
            dx=["R05.9", "I10"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "IV.D: signs and symptoms are coded when no definitive diagnosis explains them",
    ),
    why(
        Case(
            "symptom_not_routinely_associated_is_kept",
            conditions=[cond("pn", "J18.9"), cond("ha", "R51.9")],
            dx=["J18.9", "R51.9"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "I.B.6: signs not routinely associated with the diagnosis are coded",
    ),
    # --- BMI (I.B.14, I.C.21.c.3) ---
    why(
        Case(
            "bmi_alone_is_an_error",
            conditions=[HTN, cond("bmi", "Z68.41")],
            dx=["I10", "Z68.41"],
            lines=[("99213", (), 1, (1, 2))],
            status="draft",
            edits={"bmi-without-weight-dx"},
        ),
        "I.B.14 / I.C.21.c.3: BMI is reported only with an associated weight diagnosis",
    ),
    why(
        Case(
            "bmi_with_morbid_obesity_is_clean",
            conditions=[cond("ob", "E66.01"), cond("bmi", "Z68.41")],
            dx=["E66.01", "Z68.41"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "I.C.21.c.3: BMI as a secondary code with the obesity diagnosis",
    ),
    why(
        Case(
            "bmi_is_never_first_listed",
            conditions=[cond("bmi", "Z68.35"), cond("ob", "E66.9")],
            encounter={"diagnosis": [{"condition": {"reference": "Condition/bmi"}, "rank": 1}]},
            dx=["E66.9", "Z68.35"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "I.C.21.c.3: BMI codes should only be assigned as secondary diagnoses",
    ),
    why(
        Case(
            "pediatric_bmi_for_adult_is_an_error",
            conditions=[cond("ob", "E66.9"), cond("bmi", "Z68.54")],
            dx=["E66.9", "Z68.54"],
            lines=[("99213", (), 1, (1, 2))],
            status="draft",
            edits={"age-sex-conflict"},
        ),
        "Tabular note at Z68: pediatric BMI codes are for ages 2-19, adult codes from 20",
    ),
    # --- encounter reasons (I.C.2.e, I.C.21.c.5/7/8) ---
    why(
        Case(
            "chemotherapy_session_first_lists_z51_11",
            sex="female",
            conditions=[cond("ca", "C50.911"), cond("chemo", "Z51.11")],
            encounter={"diagnosis": [{"condition": {"reference": "Condition/ca"}, "rank": 1}]},
            dx=["Z51.11", "C50.911"],
            lines=[("99213", (), 1, (2, 1))],
            info={"dx-reason-first"},
        ),
        "I.C.2.e.2: Z51.11 first for a chemotherapy encounter, then the neoplasm",
    ),
    why(
        Case(
            "immunotherapy_session_first_lists_z51_12",
            conditions=[cond("ca", "C34.90"), HTN, cond("immuno", "Z51.12")],
            dx=["Z51.12", "C34.90", "I10"],
            lines=[("99213", (), 1, (2, 3, 1))],
        ),
        "I.C.2.e.2: Z51.12 first, the neoplasm second",
    ),
    why(
        Case(
            "radiation_session_first_lists_z51_0",
            conditions=[HTN, cond("ca", "C61"), cond("rt", "Z51.0")],
            dx=["Z51.0", "C61", "I10"],
            lines=[("99213", (), 1, (2, 3, 1))],
        ),
        "I.C.2.e.2: Z51.0 first for a radiation therapy encounter",
    ),
    why(
        Case(
            "follow_up_after_treatment_with_history",
            sex="female",
            conditions=[cond("hx", "Z85.3"), cond("fu", "Z09")],
            dx=["Z09", "Z85.3"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "I.C.21.c.8: Z09 first-listed, the history code (Z85.3) second",
    ),
    why(
        Case(
            "follow_up_without_history_code_warns",
            conditions=[HTN, cond("fu", "Z09")],
            dx=["Z09", "I10"],
            lines=[("99213", (), 1, (1, 2))],
            edits={"dx-history-missing"},
        ),
        "I.C.21.c.8: the follow-up code is used with the history code of the condition treated",
    ),
    why(
        Case(
            "aftercare_first_listed",
            conditions=[HTN, cond("ac", "Z48.02")],
            dx=["Z48.02", "I10"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "I.C.21.c.7: aftercare Z codes are generally first-listed",
    ),
    why(
        Case(
            "aftercare_yields_to_an_explicit_rank",
            conditions=[cond("ac", "Z48.02"), HTN],
            encounter={"diagnosis": [{"condition": {"reference": "Condition/htn"}, "rank": 1}]},
            dx=["I10", "Z48.02"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "I.C.21.c.7 'generally first-listed': the provider's ranked reason wins",
    ),
    why(
        Case(
            "screening_visit_first_lists_screening",
            sex="female",
            conditions=[HTN, cond("scr", "Z12.31")],
            encounter={"type": [{"text": "Screening visit"}]},
            dx=["Z12.31", "I10"],
            lines=[("99213", (), 1, (2, 1))],
        ),
        "I.C.21.c.5: the screening code is first-listed when the visit is for the screening",
    ),
    # --- etiology before manifestation (I.A.13) ---
    why(
        Case(
            "anemia_in_ckd_follows_the_ckd",
            conditions=[cond("an", "D63.1"), cond("ckd", "N18.4")],
            encounter={"diagnosis": [{"condition": {"reference": "Condition/an"}, "rank": 1}]},
            dx=["N18.4", "D63.1"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "D63.1 'code first underlying chronic kidney disease (N18.-)' (I.A.13)",
    ),
    why(
        Case(
            "in_conditions_classified_elsewhere_never_first",
            conditions=[cond("ps", "G47.54"), cond("pd", "G20.A1")],
            dx=["G20.A1", "G47.54"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "I.A.13: 'in conditions classified elsewhere' is a manifestation phrasing too",
    ),
    why(
        Case(
            "pneumonia_in_diseases_classified_elsewhere_follows_etiology",
            conditions=[cond("pn", "J17"), cond("q", "A78")],
            dx=["A78", "J17"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "J17 'code first underlying disease, such as Q fever (A78)'",
    ),
    why(
        Case(
            "infectious_agent_code_never_first",
            conditions=[cond("agent", "B96.20"), cond("uti", "N39.0")],
            dx=["N39.0", "B96.20"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "I.C.1.b: B95-B97 identify the agent and are secondary codes",
    ),
    why(
        Case(
            "manifestation_alone_is_an_error",
            conditions=[cond("dem", "F02.80")],
            dx=["F02.80"],
            lines=[("99213", (), 1, (1,))],
            status="draft",
            edits={"manifestation-first"},
        ),
        "I.A.13: a manifestation code cannot be first-listed; code the etiology",
    ),
    why(
        Case(
            "severe_sepsis_follows_the_infection",
            conditions=[cond("ss", "R65.21"), cond("sep", "A41.9")],
            encounter={"diagnosis": [{"condition": {"reference": "Condition/ss"}, "rank": 1}]},
            dx=["A41.9", "R65.21"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "I.C.1.d.4 and R65.2 'code first underlying infection'",
    ),
    # --- 7th characters, laterality, headers (I.A.6, I.B.13, I.B.2) ---
    why(
        Case(
            "fracture_without_7th_character_is_an_error",
            conditions=[cond("fx", "S72.001")],
            dx=["S72.001"],
            lines=[("99213", (), 1, (1,))],
            status="draft",
            edits={"code-not-billable"},
        ),
        "I.A.6: the 7th character is required; a header is an error, shown as given",
    ),
    why(
        Case(
            "unspecified_side_with_known_side_warns",
            conditions=[site(cond("om", "H66.90"), "left")],
            dx=["H66.90"],
            lines=[("99213", (), 1, (1,))],
            edits={"dx-laterality"},
        ),
        "I.B.13: laterality from the documentation (body site left) is coded",
    ),
    # --- SNOMED CT map: groups and ages (NLM map model, I.C.16) ---
    why(
        Case(
            "snomed_alzheimer_gives_both_groups",
            birth="1940-01-01",
            conditions=[cond("alz", "26929004", SCT)],
            dx=["G30.9", "F02.80"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "Map groups 1 and 2: etiology G30.9 and manifestation F02.80 (index G30.9 [F02.80])",
    ),
    why(
        Case(
            "snomed_uti_adult_is_never_neonatal",
            sex="female",
            conditions=[cond("uti", "68566005", SCT)],
            dx=["N39.0"],
            lines=[("99213", (), 1, (1,))],
        ),
        "I.C.16: perinatal codes only for newborns; an adult's UTI is N39.0",
    ),
    why(
        Case(
            "snomed_uti_newborn_is_p39_3",
            birth="2026-02-20",
            conditions=[cond("uti", "68566005", SCT)],
            dx=["P39.3"],
            lines=[("99213", (), 1, (1,))],
        ),
        "I.C.16.a: a condition of a newborn (under 28 days) takes the perinatal code",
    ),
    why(
        Case(
            "snomed_ra_adult_is_not_juvenile",
            conditions=[cond("ra", "69896004", SCT)],
            dx=["M06.9"],
            lines=[("99213", (), 1, (1,))],
        ),
        "Juvenile rheumatoid arthritis (M08) is for onset before 16: an adult gets M06.9",
    ),
    why(
        Case(
            "snomed_septic_shock_gives_infection_first",
            conditions=[cond("ss", "76571007", SCT)],
            dx=["A41.9", "R65.21"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "I.C.1.d.1.a/4: the systemic infection, then R65.21",
    ),
    why(
        Case(
            "snomed_morbid_obesity_with_bmi",
            conditions=[cond("ob", "408512008", SCT)],
            dx=["E66.01", "Z68.41"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "Map groups: E66.01 and the adult BMI Z68.41 (I.C.21.c.3)",
    ),
    why(
        Case(
            "snomed_hypertension_and_ckd_combine",
            conditions=[cond("htn", "59621000", SCT), cond("ckd", "431856006", SCT)],
            dx=["I12.9", "N18.2"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "I.C.9.a.2 applies to mapped codes too: I12.9 + N18.2",
    ),
    # --- pointers ---
    why(
        Case(
            "procedure_points_to_the_combined_code",
            conditions=[cond("hld", "E78.5"), HTN, cond("ckd", "N18.4")],
            procedures=[proc("ecg", "93000", reason="htn")],
            dx=["E78.5", "I12.9", "N18.4"],
            lines=[("99213", (), 1, (1, 2, 3)), ("93000", (), 1, (2, 1, 3))],
        ),
        "Pointers: the line points first to the diagnosis that justifies it (its reason)",
    ),
    why(
        Case(
            "em_pointer_never_starts_with_external_cause",
            conditions=[cond("fall", "W19.XXXA"), cond("cut", "S61.412A")],
            encounter={"diagnosis": [{"condition": {"reference": "Condition/fall"}, "rank": 1}]},
            dx=["S61.412A", "W19.XXXA"],
            lines=[("99213", (), 1, (1, 2))],
        ),
        "I.C.20: external cause codes are never first-listed nor the first pointer",
    ),
]

CODER_CASES: list[Case] = DX_CASES

__all__ = ["CODER_CASES", "CPT", "ICD", "coverage"]
