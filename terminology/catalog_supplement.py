"""Billable catalog supplement (version 2026.1): codes Billable's own rule tables emit
(mappings/data em-levels.csv, preventive.csv, ed-levels.csv, the charge master, the
modifiers the coding engine appends) that the shipped CPT and HCPCS subsets lacked, so that
every code Billable puts on a claim is a concept of its own catalog
(``tests/conformance`` walks the produced corpus for it). Code numbers with
Billable's own short descriptions (never CPT descriptors); merged into the shipped subsets
(content = fragment) when they load (``terminology.store.codesystem_from_json``).
Sources: CPT code numbers (c) AMA as CMS publishes them in the MPFS RVU file; HCPCS Level II
and its modifiers from the CMS HCPCS quarterly file (public domain).
"""

from __future__ import annotations

from terminology import systems

# system -> {code: Billable's own short description}
SUPPLEMENT: dict[str, dict[str, str]] = {
    systems.CPT: {
        "25": "Modifier: separate E/M on the day of a procedure",
        "26": "Modifier: professional component",
        "33": "Modifier: preventive service",
        "50": "Modifier: bilateral procedure",
        "59": "Modifier: distinct procedural service",
        "91": "Modifier: repeat clinical laboratory test",
        "95": "Modifier: synchronous telemedicine service",
        "73610": "X-ray of the ankle, three or more views",
        "74177": "CT of abdomen and pelvis with contrast",
        "80061": "Lipid panel",
        "83036": "Hemoglobin A1c",
        "99204": "Office visit, new patient, level 4 (45+ min)",
        "99205": "Office visit, new patient, level 5 (60+ min)",
        "99211": "Office visit, established patient, minimal",
        "99215": "Office visit, established patient, level 5 (40+ min)",
        "99282": "ED visit, straightforward decision making",
        "99283": "ED visit, low decision making",
        "99284": "ED visit, moderate decision making",
        "99285": "ED visit, high decision making",
        "99341": "Home visit, new patient, level 1",
        "99342": "Home visit, new patient, level 2",
        "99344": "Home visit, new patient, level 4",
        "99345": "Home visit, new patient, level 5",
        "99347": "Home visit, established patient, level 1",
        "99348": "Home visit, established patient, level 2",
        "99349": "Home visit, established patient, level 3",
        "99350": "Home visit, established patient, level 4",
        "99381": "Preventive visit, new patient, under 1 year",
        "99382": "Preventive visit, new patient, 1 to 4 years",
        "99383": "Preventive visit, new patient, 5 to 11 years",
        "99384": "Preventive visit, new patient, 12 to 17 years",
        "99385": "Preventive visit, new patient, 18 to 39 years",
        "99386": "Preventive visit, new patient, 40 to 64 years",
        "99387": "Preventive visit, new patient, 65 years and over",
    },
    systems.HCPCS: {
        "D0274": "Dental bitewing radiographs, four images",
        "LT": "Modifier: left side",
        "RT": "Modifier: right side",
        "XE": "Modifier: separate encounter",
        "XS": "Modifier: separate structure or organ",
        "XP": "Modifier: separate practitioner",
        "XU": "Modifier: unusual non-overlapping service",
        "E1": "Modifier: upper left eyelid",
        "E2": "Modifier: lower left eyelid",
        "E3": "Modifier: upper right eyelid",
        "E4": "Modifier: lower right eyelid",
    },
}
