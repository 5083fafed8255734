"""Gold cases for the coder-grade rules (issue 15), each with the rule it tests.

Same shape as ``cases.py`` (an Encounter on 2026-03-02 unless said otherwise); every case
names its source in ``why``: the ICD-10-CM Official Guidelines section (FY2026/FY2027),
the CPT E/M rule or the CMS/NCCI policy a certified coder would cite.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from tests.coding.cases import SCT, Case, at, cond, coverage, proc
from tests.coding.gold import slug

NUCC = "http://nucc.org/provider-taxonomy"
SOPT = "urn:oid:2.16.840.1.113883.3.221.5"
CVX = "http://hl7.org/fhir/sid/cvx"
FAMILY, CARDIOLOGY = "207Q00000X", "207RC0000X"


@dataclass
class CoderCase(Case):
    """A gold case with earlier encounters, PractitionerRoles and Immunizations."""

    rationale: str = ""
    prior: list[dict[str, Any]] = field(default_factory=list)
    roles: list[dict[str, Any]] = field(default_factory=list)
    immunizations: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Practitioners are per case (one store holds every case): dr1 renders this visit.
        if self.prior or self.roles:
            me = f"Practitioner/{slug(self)}-dr1"
            self.encounter.setdefault(
                "participant",
                [
                    {
                        "type": [
                            {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                        "code": "PPRF",
                                    }
                                ]
                            }
                        ],
                        "individual": {"reference": me},
                    }
                ],
            )

    def extras(self, prefix: str, subject: dict[str, Any], eref: dict[str, Any]) -> list[dict]:
        out = []
        for r in self.prior + self.roles + self.immunizations:
            r = copy.deepcopy(r)
            r["id"] = f"{prefix}-{r['id']}"
            for part in r.get("participant") or []:
                ref = part["individual"]["reference"]
                part["individual"]["reference"] = ref.replace(
                    "Practitioner/", f"Practitioner/{prefix}-"
                )
            if "practitioner" in r:
                ref = r["practitioner"]["reference"]
                r["practitioner"]["reference"] = ref.replace(
                    "Practitioner/", f"Practitioner/{prefix}-"
                )
            if r["resourceType"] == "Encounter":
                r["subject"] = subject
            if r["resourceType"] == "Immunization":
                r["patient"] = subject
                r["encounter"] = eref
            out.append(r)
        return out


def visit(vid: str, day: str, dr: str = "dr1", org: str = "org1", types: list[str] | None = None):
    """An earlier finished encounter of the patient."""
    e: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": vid,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "period": {"start": f"{day}T09:00:00Z", "end": f"{day}T09:20:00Z"},
        "serviceProvider": {"reference": f"Organization/{org}"},
        "participant": [{"individual": {"reference": f"Practitioner/{dr}"}}],
    }
    if types:
        e["type"] = [{"coding": [{"system": SCT, "code": t}]} for t in types]
    return e


def role(rid: str, dr: str, specialty: str | None, org: str = "org1") -> dict[str, Any]:
    r: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "id": rid,
        "practitioner": {"reference": f"Practitioner/{dr}"},
        "organization": {"reference": f"Organization/{org}"},
    }
    if specialty:
        r["specialty"] = [{"coding": [{"system": NUCC, "code": specialty}]}]
    return r


def payer(cid: str, kind_code: str | None, name: str, start: str = "2020-01-01") -> dict:
    c = coverage(cid, 1, start)
    c["payor"] = [{"display": name}]
    if kind_code:
        c["type"] = {"coding": [{"system": SOPT, "code": kind_code}]}
    return c


MEDICARE = payer("mcr", "1", "Medicare Part B")
MEDICAID = payer("mcd", None, "MassHealth")
COMMERCIAL = payer("com", "5", "Acme Health")


def imm(iid: str, cvx: str, *, education: bool = False, status: str = "completed") -> dict:
    i: dict[str, Any] = {
        "resourceType": "Immunization",
        "id": iid,
        "status": status,
        "vaccineCode": {"coding": [{"system": CVX, "code": cvx}]},
        "occurrenceDateTime": at(5),
        "primarySource": True,
    }
    if education:
        i["education"] = [{"documentType": "VIS", "presentationDate": at(4)}]
    return i


def timed(pid: str, code: str, start: int, end: int, reason: str | None = None) -> dict:
    """A procedure with its own performed period (minutes after 09:00)."""
    pr = proc(pid, code, reason=reason)
    del pr["performedDateTime"]
    pr["performedPeriod"] = {"start": at(start), "end": at(end)}
    return pr


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
        "I.A.13: N18's conditional 'code first any associated' note needs the etiology present",
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
        "CMS-1500 item 24E: the line points first to the diagnosis that justifies it (its reason)",
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


def cc(name: str, rationale: str, **kw: Any) -> CoderCase:
    return CoderCase(name, rationale=rationale, **kw)


HTN2 = cond("htn", "I10")
EM_CASES: list[Case] = [
    # --- new vs established (CPT E/M guidelines, New and Established Patients) ---
    cc(
        "established_same_physician_other_organization",
        "CPT: established = professional services from the same physician within 3 years",
        established=False,
        conditions=[HTN2],
        prior=[visit("v1", "2025-01-10", "dr1", "org2")],
        roles=[role("r1", "dr1", FAMILY)],
        dx=["I10"],
        lines=[("99213", (), 1, (1,))],
    ),
    cc(
        "established_same_specialty_same_group",
        "CPT: another physician of the exact same specialty and subspecialty in the same group",
        established=False,
        conditions=[HTN2],
        prior=[visit("v1", "2025-06-01", "dr2", "org1")],
        roles=[role("r1", "dr1", FAMILY), role("r2", "dr2", FAMILY)],
        dx=["I10"],
        lines=[("99213", (), 1, (1,))],
    ),
    cc(
        "new_other_specialty_same_group",
        "CPT: a physician of another specialty in the group makes the patient new",
        established=False,
        conditions=[HTN2],
        prior=[visit("v1", "2025-06-01", "dr2", "org1")],
        roles=[role("r1", "dr1", FAMILY), role("r2", "dr2", CARDIOLOGY)],
        dx=["I10"],
        lines=[("99202", (), 1, (1,))],
    ),
    cc(
        "new_same_specialty_other_group",
        "CPT: same specialty but a different group practice: new patient",
        established=False,
        conditions=[HTN2],
        prior=[visit("v1", "2025-06-01", "dr2", "org2")],
        roles=[role("r1", "dr1", FAMILY), role("r2", "dr2", FAMILY, "org2")],
        dx=["I10"],
        lines=[("99202", (), 1, (1,))],
    ),
    cc(
        "new_when_last_visit_over_3_years_ago",
        "CPT: the 3-year rule, a visit on 2023-02-28 is more than 3 years before 2026-03-02",
        established=False,
        conditions=[HTN2],
        prior=[visit("v1", "2023-02-28", "dr1", "org1")],
        roles=[role("r1", "dr1", FAMILY)],
        dx=["I10"],
        lines=[("99202", (), 1, (1,))],
    ),
    cc(
        "established_within_3_years",
        "CPT: a visit on 2023-03-03 is within the past three years",
        established=False,
        conditions=[HTN2],
        prior=[visit("v1", "2023-03-03", "dr1", "org1")],
        roles=[role("r1", "dr1", FAMILY)],
        dx=["I10"],
        lines=[("99213", (), 1, (1,))],
    ),
    cc(
        "unknown_specialty_falls_back_to_organization",
        "CPT same group + specialty unknown: the organization decides, with an information issue",
        established=False,
        conditions=[HTN2],
        prior=[visit("v1", "2025-06-01", "dr2", "org1")],
        dx=["I10"],
        lines=[("99213", (), 1, (1,))],
        info={"em-status-by-organization"},
    ),
    cc(
        "unknown_specialty_no_visit_at_organization_is_new",
        "CPT new patient; organization fallback without specialty: no earlier visit there",
        established=False,
        conditions=[HTN2],
        prior=[visit("v1", "2025-06-01", "dr2", "org2")],
        dx=["I10"],
        lines=[("99202", (), 1, (1,))],
        info={"em-status-by-organization"},
    ),
    # --- time (CPT E/M guidelines: time excludes separately reported services) ---
    cc(
        "time_excludes_separately_reported_procedure",
        "CPT time: 45 minutes minus a 20-minute billed procedure leaves 25: 99213",
        minutes=45,
        conditions=[HTN2, cond("cut", "S61.412A")],
        procedures=[timed("rep", "12001", 10, 30, reason="cut")],
        dx=["I10", "S61.412A"],
        lines=[("99213", ("25",), 1, (1, 2)), ("12001", (), 1, (2, 1))],
        info={"em-time-excludes-procedures"},
    ),
    # --- prolonged services by payer (payer-rules.csv) ---
    cc(
        "prolonged_commercial_established_55_min",
        "CPT 99417: 15 minutes beyond the 99215 minimum of 40 (commercial)",
        minutes=55,
        conditions=[HTN2],
        coverages=[COMMERCIAL],
        dx=["I10"],
        lines=[("99215", (), 1, (1,)), ("99417", (), 1, (1,))],
        info={"em-prolonged"},
    ),
    cc(
        "no_prolonged_commercial_established_54_min",
        "CPT 99417 needs a full 15 minutes beyond 40",
        minutes=54,
        conditions=[HTN2],
        coverages=[COMMERCIAL],
        dx=["I10"],
        lines=[("99215", (), 1, (1,))],
    ),
    cc(
        "prolonged_commercial_new_90_min_two_units",
        "CPT 99417 x 2: 30 minutes beyond the 99205 minimum of 60",
        minutes=90,
        established=False,
        conditions=[HTN2],
        coverages=[COMMERCIAL],
        dx=["I10"],
        lines=[("99205", (), 1, (1,)), ("99417", (), 2, (1,))],
    ),
    cc(
        "prolonged_medicare_established_69_min_g2212",
        "CMS G2212 for Medicare from 69 minutes with 99215 (CY2021 PFS final rule)",
        minutes=69,
        birth="1955-01-01",
        conditions=[HTN2],
        coverages=[MEDICARE],
        dx=["I10"],
        lines=[("99215", (), 1, (1,)), ("G2212", (), 1, (1,))],
    ),
    cc(
        "no_prolonged_medicare_established_68_min",
        "CMS: G2212 not before 69 minutes with 99215 (99417 is not paid by Medicare)",
        minutes=68,
        birth="1955-01-01",
        conditions=[HTN2],
        coverages=[MEDICARE],
        dx=["I10"],
        lines=[("99215", (), 1, (1,))],
    ),
    cc(
        "prolonged_medicare_new_89_min_g2212",
        "CMS G2212 for Medicare from 89 minutes with 99205",
        minutes=89,
        established=False,
        birth="1955-01-01",
        conditions=[HTN2],
        coverages=[MEDICARE],
        dx=["I10"],
        lines=[("99205", (), 1, (1,)), ("G2212", (), 1, (1,))],
    ),
    cc(
        "prolonged_medicaid_new_75_min_99417",
        "Medicaid (payor MassHealth) follows CPT: 99417 at 75 minutes with 99205",
        minutes=75,
        established=False,
        conditions=[HTN2],
        coverages=[MEDICAID],
        dx=["I10"],
        lines=[("99205", (), 1, (1,)), ("99417", (), 1, (1,))],
    ),
    # --- Medicare preventive (MCPM Ch. 12 sec. 30.6.1.1, Ch. 18 sec. 80/140) ---
    cc(
        "medicare_ippe_in_first_year_of_part_b",
        "Medicare: G0402 within 12 months of the Part B effective date",
        types=["185349003"],
        birth="1960-01-15",
        conditions=[cond("z00", "Z00.00")],
        coverages=[payer("mcr", "1", "Medicare Part B", "2025-09-01")],
        dx=["Z00.00"],
        lines=[("G0402", (), 1, (1,))],
        info={"medicare-preventive"},
    ),
    cc(
        "medicare_first_annual_wellness_visit",
        "Medicare does not pay 99387/99397: G0438 for the first annual wellness visit",
        types=["185349003"],
        birth="1950-01-15",
        conditions=[cond("z00", "Z00.00")],
        coverages=[MEDICARE],
        dx=["Z00.00"],
        lines=[("G0438", (), 1, (1,))],
    ),
    cc(
        "medicare_subsequent_annual_wellness_visit",
        "Medicare: G0439 when an earlier wellness visit is on file",
        types=["185349003"],
        birth="1950-01-15",
        established=False,
        conditions=[cond("z00", "Z00.00")],
        coverages=[MEDICARE],
        prior=[visit("v1", "2025-02-20", "dr1", "org1", ["185349003"])],
        roles=[role("r1", "dr1", FAMILY)],
        dx=["Z00.00"],
        lines=[("G0439", (), 1, (1,))],
    ),
    cc(
        "commercial_senior_preventive_is_99397",
        "Commercial payers take the CPT preventive codes by age (99397 from 65)",
        types=["185349003"],
        birth="1950-01-15",
        conditions=[cond("z00", "Z00.00")],
        coverages=[COMMERCIAL],
        dx=["Z00.00"],
        lines=[("99397", (), 1, (1,))],
    ),
    # --- procedures and E/M (CMS global surgery, NCCI) ---
    cc(
        "minor_procedure_visit_has_no_em",
        "MCPM Ch. 12 sec. 40.1: the decision for a minor procedure (010) is part of it",
        conditions=[cond("cut", "S61.412A")],
        procedures=[proc("rep", "12001", reason="cut")],
        dx=["S61.412A"],
        lines=[("12001", (), 1, (1,))],
        info={"em-procedure-only"},
    ),
    cc(
        "encounter_type_is_the_procedure",
        "MCPM Ch. 12 sec. 40.1: the encounter type is the procedure (wound stitched): no E/M",
        types=["288086009"],
        conditions=[cond("cut", "S61.412A")],
        procedures=[proc("rep", "288086009", SCT)],
        dx=["S61.412A"],
        lines=[("12001", (), 1, (1,))],
        info={"em-procedure-only"},
    ),
    cc(
        "minor_procedure_inferred_indication_asks_review",
        "MCPM Ch. 12 sec. 40.1 with the indication inferred (no reasonReference): coder confirms",
        conditions=[cond("cut", "S61.412A")],
        procedures=[proc("rep", "12001")],
        dx=["S61.412A"],
        lines=[("12001", (), 1, (1,))],
        edits={"em-procedure-only"},
    ),
    cc(
        "preventive_visit_with_minor_procedure_takes_25",
        "CPT modifier 25 on the preventive E/M with a minor procedure the same day",
        types=["162673000"],
        birth="1980-06-01",
        conditions=[cond("z00", "Z00.01"), cond("cut", "S61.412A")],
        procedures=[proc("rep", "12001", reason="cut")],
        dx=["Z00.01", "S61.412A"],
        lines=[("99396", ("25",), 1, (1, 2)), ("12001", (), 1, (2, 1))],
    ),
    cc(
        "decision_for_surgery_the_day_before_takes_57",
        "MCPM Ch. 12 sec. 40.2.A.4: E/M the day before a 090-global surgery, modifier 57",
        conditions=[cond("oa", "M17.11")],
        procedures=[proc("tka", "27447", site="right knee", day="2026-03-03")],
        dx=["M17.11"],
        lines=[("99213", ("57",), 1, (1,)), ("27447", ("RT",), 1, (1,))],
        info={"em-decision-for-surgery"},
    ),
    cc(
        "nurse_visit_99211_not_with_drug_administration",
        "NCCI Policy Manual Ch. XI: 99211 is not reported with drug administration",
        minutes=5,
        conditions=[cond("b12", "D51.9")],
        procedures=[proc("inj", "96372", reason="b12")],
        dx=["D51.9"],
        lines=[("96372", (), 1, (1,))],
        info={"em-99211-with-drug-admin"},
    ),
    cc(
        "drug_administration_with_separate_problem_takes_25",
        "NCCI: an E/M with drug administration needs a separately identifiable problem and 25",
        conditions=[HTN2, cond("b12", "D51.9")],
        procedures=[proc("inj", "96372", reason="b12")],
        dx=["I10", "D51.9"],
        lines=[("99213", ("25",), 1, (1, 2)), ("96372", (), 1, (2, 1))],
    ),
    cc(
        "chemotherapy_day_without_separate_problem_has_no_em",
        "CMS: an E/M on a chemotherapy day needs a separately identifiable problem",
        sex="female",
        conditions=[cond("ca", "C50.911"), cond("chemo", "Z51.11")],
        procedures=[proc("chemo1", "96413", reason="ca")],
        dx=["Z51.11", "C50.911"],
        lines=[("96413", (), 1, (2, 1))],
        info={"em-procedure-only"},
    ),
    cc(
        "dialysis_day_includes_the_renal_em",
        "CPT dialysis guidelines: 90935 includes the E/M services related to the renal disease",
        conditions=[cond("ckd", "N18.6")],
        procedures=[proc("hd", "90935", reason="ckd")],
        dx=["N18.6"],
        lines=[("90935", (), 1, (1,))],
        info={"em-procedure-only"},
    ),
    # --- screening that becomes diagnostic ---
    cc(
        "screening_colonoscopy_becomes_diagnostic_medicare_pt",
        "I.C.21.c.5 and MCPM Ch. 18 sec. 60.2: Z12.11 first, the polyp second, modifier PT",
        birth="1955-01-01",
        conditions=[cond("polyp", "K63.5"), cond("scr", "Z12.11")],
        procedures=[proc("colo", "45385", reason="polyp")],
        coverages=[MEDICARE],
        dx=["Z12.11", "K63.5"],
        lines=[("45385", ("PT",), 1, (2, 1))],
        info={"screening-became-diagnostic", "em-procedure-only"},
    ),
    cc(
        "screening_colonoscopy_becomes_diagnostic_commercial_33",
        "CPT modifier 33 (preventive service) for a commercial payer",
        conditions=[cond("polyp", "K63.5"), cond("scr", "Z12.11")],
        procedures=[proc("colo", "45385", reason="polyp")],
        coverages=[COMMERCIAL],
        dx=["Z12.11", "K63.5"],
        lines=[("45385", ("33",), 1, (2, 1))],
        info={"em-procedure-only"},
    ),
]

FACILITY_CASES: list[Case] = [
    cc(
        "ed_ecg_bills_the_interpretation_only",
        "MPFS PC/TC indicator 4: in the ED the physician bills 93010, not the global 93000",
        enc_class="EMER",
        conditions=[cond("cp", "R07.9")],
        procedures=[proc("ecg", "93000")],
        dx=["R07.9"],
        lines=[("99283", (), 1, (1,)), ("93010", (), 1, (1,))],
        edits={"ed-level-review"},
        info={"professional-component"},
        pos="23",
    ),
    cc(
        "ed_injection_and_lab_are_facility_services",
        "MCPM Ch. 12 sec. 30.5, Ch. 16 sec. 40: facility staff services go on the facility claim",
        enc_class="EMER",
        conditions=[cond("mig", "G43.909")],
        procedures=[proc("inj", "96372"), proc("cmp", "80053")],
        dx=["G43.909"],
        lines=[("99282", (), 1, (1,))],
        edits={"ed-level-review"},
        info={"facility-service"},
        pos="23",
    ),
    cc(
        "ed_life_threatening_admitted_is_99285",
        "CPT 2023 ED MDM: a threat to life (STEMI) and a decision to admit: high MDM, 99285",
        enc_class="EMER",
        conditions=[cond("mi", "I21.3")],
        procedures=[proc("ecg", "93000")],
        encounter={"hospitalization": {"dischargeDisposition": {"coding": [{"code": "hosp"}]}}},
        dx=["I21.3"],
        lines=[("99285", (), 1, (1,)), ("93010", (), 1, (1,))],
        info={"ed-level-mdm"},
        pos="23",
    ),
    cc(
        "ed_pneumonia_admitted_with_two_tests_is_99284",
        "CPT ED MDM 2 of 3: problems moderate, data low, risk high (admission): moderate, 99284",
        enc_class="EMER",
        conditions=[cond("pn", "J18.9")],
        procedures=[proc("cxr", "71046"), proc("cbc", "85025")],
        encounter={"hospitalization": {"dischargeDisposition": {"coding": [{"code": "hosp"}]}}},
        dx=["J18.9"],
        lines=[("99284", (), 1, (1,)), ("71046", ("26",), 1, (1,))],
        info={"ed-level-mdm", "facility-service"},
        pos="23",
    ),
    cc(
        "ed_discharged_home_keeps_the_proxy",
        "CPT ED MDM cannot be derived without the risk element: the proxy with its warning",
        enc_class="EMER",
        conditions=[cond("mi", "I21.3")],
        encounter={"hospitalization": {"dischargeDisposition": {"coding": [{"code": "home"}]}}},
        dx=["I21.3"],
        lines=[("99282", (), 1, (1,))],
        edits={"ed-level-review"},
        pos="23",
    ),
    cc(
        "office_ecg_is_the_global_code",
        "MPFS PC/TC: in the office (POS 11) the global ECG 93000 is billed",
        conditions=[cond("cp", "R07.9")],
        procedures=[proc("ecg", "93000", reason="cp")],
        dx=["R07.9"],
        lines=[("99213", (), 1, (1,)), ("93000", (), 1, (1,))],
    ),
]

IMM_CASES: list[Case] = [
    cc(
        "child_vaccines_with_counselling_90460_90461",
        "CPT 90460 per vaccine and 90461 per additional component, under 19 with counselling",
        types=["410620009"],
        birth="2022-01-01",
        conditions=[cond("z00", "Z00.129")],
        immunizations=[imm("mmr", "03", education=True), imm("dtap", "20", education=True)],
        dx=["Z00.129", "Z23"],
        lines=[
            ("99392", (), 1, (1, 2)),
            ("90700", (), 1, (2, 1)),
            ("90707", (), 1, (2, 1)),
            ("90460", (), 2, (2, 1)),
            ("90461", (), 4, (2, 1)),
        ],
    ),
    cc(
        "child_vaccine_without_counselling_90471",
        "CPT 90471 when no counselling is documented, whatever the age",
        types=["410620009"],
        birth="2015-01-01",
        conditions=[cond("z00", "Z00.129")],
        immunizations=[imm("flu", "140")],
        dx=["Z00.129", "Z23"],
        lines=[("99393", (), 1, (1, 2)), ("90656", (), 1, (2, 1)), ("90471", (), 1, (2, 1))],
    ),
    cc(
        "adult_flu_at_problem_visit_commercial",
        "CPT 90471 + product; the E/M for a separate problem takes 25 (NCCI)",
        conditions=[HTN2],
        coverages=[COMMERCIAL],
        immunizations=[imm("flu", "140")],
        dx=["I10", "Z23"],
        lines=[("99213", ("25",), 1, (1, 2)), ("90656", (), 1, (2, 1)), ("90471", (), 1, (2, 1))],
    ),
    cc(
        "adult_flu_medicare_g0008",
        "Medicare: G0008 administers the influenza vaccine (MCPM Ch. 18 sec. 10)",
        birth="1950-01-01",
        conditions=[HTN2],
        coverages=[MEDICARE],
        immunizations=[imm("flu", "140")],
        dx=["I10", "Z23"],
        lines=[("99213", ("25",), 1, (1, 2)), ("90656", (), 1, (2, 1)), ("G0008", (), 1, (2, 1))],
    ),
    cc(
        "medicare_pneumococcal_g0009_and_zoster_cpt",
        "Medicare: G0009 for pneumococcal; zoster (Part D vaccine) keeps 90471",
        birth="1950-01-01",
        coverages=[MEDICARE],
        immunizations=[imm("pcv", "133"), imm("zos", "187")],
        dx=["Z23"],
        lines=[
            ("90670", (), 1, (1,)),
            ("90750", (), 1, (1,)),
            ("G0009", (), 1, (1,)),
            ("90471", (), 1, (1,)),
        ],
        info={"em-procedure-only"},
    ),
    cc(
        "medicare_hepatitis_b_g0010",
        "Medicare: G0010 administers the hepatitis B vaccine",
        birth="1950-01-01",
        coverages=[MEDICARE],
        immunizations=[imm("hepb", "43")],
        dx=["Z23"],
        lines=[("90746", (), 1, (1,)), ("G0010", (), 1, (1,))],
    ),
    cc(
        "vaccine_only_visit_has_no_em",
        "A visit only for the vaccine: Z23 first (I.C.21.c.2), no E/M (NCCI)",
        minutes=10,
        immunizations=[imm("flu", "140")],
        dx=["Z23"],
        lines=[("90656", (), 1, (1,)), ("90471", (), 1, (1,))],
        info={"em-procedure-only"},
    ),
    cc(
        "two_adult_injections_90471_90472",
        "CPT 90471 for the first injected vaccine, 90472 for each additional",
        minutes=10,
        immunizations=[imm("tdap", "115"), imm("hepa", "52")],
        dx=["Z23"],
        lines=[
            ("90632", (), 1, (1,)),
            ("90715", (), 1, (1,)),
            ("90471", (), 1, (1,)),
            ("90472", (), 1, (1,)),
        ],
    ),
    cc(
        "infant_oral_and_injected_90471_90474",
        "CPT 90474 for the oral vaccine as an add-on to 90471 (90473 never with 90471)",
        types=["410620009"],
        birth="2025-11-01",
        conditions=[cond("z00", "Z00.129")],
        immunizations=[imm("rota", "119"), imm("hepb", "08")],
        dx=["Z00.129", "Z23"],
        lines=[
            ("99391", (), 1, (1, 2)),
            ("90744", (), 1, (2, 1)),
            ("90681", (), 1, (2, 1)),
            ("90471", (), 1, (2, 1)),
            ("90474", (), 1, (2, 1)),
        ],
    ),
    cc(
        "not_done_immunization_is_not_billed",
        "CPT 90460-90474: only administered (completed) vaccines are reported",
        conditions=[HTN2],
        immunizations=[imm("flu", "140", status="not-done")],
        dx=["I10"],
        lines=[("99213", (), 1, (1,))],
    ),
    cc(
        "unknown_vaccine_is_an_error",
        "CDC CVX/CPT crosswalk subset: an unlisted CVX code is an error for review, never guessed",
        conditions=[HTN2],
        immunizations=[imm("odd", "999")],
        dx=["I10"],
        lines=[("99213", (), 1, (1,))],
        status="draft",
        edits={"vaccine-unmapped"},
    ),
]

CODER_CASES: list[Case] = DX_CASES + EM_CASES + FACILITY_CASES + IMM_CASES
