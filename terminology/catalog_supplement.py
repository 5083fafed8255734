"""Billable catalog supplement (version 2026.2): codes a shipped CPT or HCPCS release lacks
that Billable puts on claims, merged into every release of those systems when it loads
(``terminology.store.codesystem_from_json``; a code the release has keeps the release's
row), so that every code Billable emits is a concept of its own catalog (``tests/conformance``
walks the produced corpus for it). Code numbers with Billable's own short descriptions,
never CPT or CDT descriptors.

Why these releases lack them, and where the codes belong:

* **CPT modifiers** (25, 26, 57, 59...) are concepts of the CPT code system itself
  (``http://www.ama-assn.org/go/cpt``): CPT lists them in its Appendix A, HL7 Terminology's
  value set ``http://terminology.hl7.org/ValueSet/cpt-modifiers`` is "codes from
  http://www.ama-assn.org/go/cpt where modifier = true", and CARIN BB STU2's
  ``AMACPTCMSHCPCSModifiers`` draws item modifiers from that system and HCPCS Level II.
  The shipped CPT release is the code list of CMS's PFS relative value file (RVU26C),
  which names modifiers only in its MOD column (26, 53) and its indicator definitions
  (50, 51, 62, 66, 80-82), never as codes; a licensed AMA file loaded with
  ``billable terminology load cpt`` has procedure codes only. So every release gets the
  whole Level I modifier list (``CPT_MODIFIERS``), as modifiers: not billable on a line
  of their own, property ``kind = modifier`` like the HCPCS Level II modifier records.
* **CDT dental codes** (D0120-D9999, e.g. D0274 four bitewings) are HCPCS Level II "D"
  codes by reference: CMS's PFS relative value file lists them in its HCPCS column (D0274
  with status R, ADA copyright notice in its header), but CMS's HCPCS alpha-numeric file
  leaves them out because the ADA owns CDT. Billable codes them with the HCPCS system, as
  CMS bills them on a professional claim and as CARIN BB STU2's professional EOB binds
  ``productOrService`` (``AMACPTCMSHCPCSProcedureCodes``: CPT and HCPCS);
  ``http://www.ada.org/cdt`` belongs to a dental claim (CARIN's Oral EOB), which Billable
  does not produce. The shipped HCPCS release adds the D codes of
  ``curation/hcpcs-subset.tsv``; the ones Billable's other rule tables use (D0274 of
  ``mappings/data/snomed-supplement.csv`` and the charge master) are here.
* **Level I codes of Billable's rule tables** (E/M levels, preventive visits...) for a
  CPT fragment or an older release that lacks them.

Sources: CPT code numbers (c) AMA, as CMS publishes them in the MPFS RVU file and the
Medicare Claims Processing Manual (chapter 12, modifiers 24, 25, 57, 58, 59, 79...); HCPCS
Level II and its modifiers from the CMS HCPCS quarterly file (public domain); CDT code
numbers (c) ADA as listed in the MPFS RVU file.
"""

from __future__ import annotations

from terminology import systems
from terminology.model import Concept

VERSION = "2026.2"

# CPT Appendix A (Level I) modifiers: number -> Billable's own short description.
CPT_MODIFIERS: dict[str, str] = {
    "22": "Modifier: increased procedural services",
    "23": "Modifier: unusual anesthesia",
    "24": "Modifier: unrelated E/M in a postoperative period",
    "25": "Modifier: separate E/M on the day of a procedure",
    "26": "Modifier: professional component",
    "27": "Modifier: several outpatient hospital E/M encounters on one day",
    "32": "Modifier: mandated service",
    "33": "Modifier: preventive service",
    "47": "Modifier: anesthesia by the surgeon",
    "50": "Modifier: bilateral procedure",
    "51": "Modifier: multiple procedures",
    "52": "Modifier: reduced service",
    "53": "Modifier: discontinued procedure",
    "54": "Modifier: surgical care only",
    "55": "Modifier: postoperative management only",
    "56": "Modifier: preoperative management only",
    "57": "Modifier: decision for surgery",
    "58": "Modifier: staged or related procedure in a postoperative period",
    "59": "Modifier: distinct procedural service",
    "62": "Modifier: two surgeons",
    "63": "Modifier: procedure on an infant under 4 kg",
    "66": "Modifier: surgical team",
    "73": "Modifier: outpatient procedure stopped before anesthesia",
    "74": "Modifier: outpatient procedure stopped after anesthesia",
    "76": "Modifier: repeat procedure, same practitioner",
    "77": "Modifier: repeat procedure, another practitioner",
    "78": "Modifier: unplanned return to the operating room, postoperative period",
    "79": "Modifier: unrelated procedure in a postoperative period",
    "80": "Modifier: assistant surgeon",
    "81": "Modifier: minimum assistant surgeon",
    "82": "Modifier: assistant surgeon, no qualified resident available",
    "90": "Modifier: reference (outside) laboratory",
    "91": "Modifier: repeat clinical laboratory test",
    "92": "Modifier: alternative laboratory platform",
    "93": "Modifier: synchronous telemedicine, audio only",
    "95": "Modifier: synchronous telemedicine, audio and video",
    "96": "Modifier: habilitative service",
    "97": "Modifier: rehabilitative service",
    "99": "Modifier: multiple modifiers",
}

# HCPCS Level II modifiers Billable appends itself (in the CMS file; kept for fragments).
HCPCS_MODIFIERS: dict[str, str] = {
    "LT": "Modifier: left side",
    "RT": "Modifier: right side",
    "PT": "Modifier: screening turned diagnostic (colorectal)",
    "TC": "Modifier: technical component",
    "XE": "Modifier: separate encounter",
    "XS": "Modifier: separate structure or organ",
    "XP": "Modifier: separate practitioner",
    "XU": "Modifier: unusual non-overlapping service",
    "E1": "Modifier: upper left eyelid",
    "E2": "Modifier: lower left eyelid",
    "E3": "Modifier: upper right eyelid",
    "E4": "Modifier: lower right eyelid",
}

MODIFIERS: dict[str, frozenset[str]] = {
    systems.CPT: frozenset(CPT_MODIFIERS),
    systems.HCPCS: frozenset(HCPCS_MODIFIERS),
}

# system -> {code: Billable's own short description}
SUPPLEMENT: dict[str, dict[str, str]] = {
    systems.CPT: {
        **CPT_MODIFIERS,
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
        **HCPCS_MODIFIERS,
        "D0274": "Dental bitewing radiographs, four images",
    },
}


def supplement_concepts(url: str) -> list[Concept]:
    """The supplement's concepts for the code system ``url`` (canonical), modifiers marked
    as such (not billable on a line of their own)."""
    modifiers = MODIFIERS.get(url, frozenset())
    return [
        Concept(code, display, None, False, properties={"kind": "modifier"})
        if code in modifiers
        else Concept(code, display, None, True)
        for code, display in SUPPLEMENT.get(url, {}).items()
    ]
