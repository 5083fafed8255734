"""Canonical URIs of the code systems, value sets and concept maps Billable knows.

Code system URIs follow HL7 Terminology (terminology.hl7.org); the small Billable
systems that have no HL7 home yet live under ``BILLABLE_BASE``.
"""

from __future__ import annotations

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
# HCPCS Level II as CARIN Blue Button STU2's value sets name it (AMACPTCMSHCPCSProcedureCodes,
# AMACPTCMSHCPCSModifiers): the https form. HL7 Terminology's "hcpcs-Level-II" spells it with
# http; that form, Blue Button's URI and THO's retired "HCPCS-all-codes" are aliases.
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
HCPCS_HTTP = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
HCPCS_BLUEBUTTON = "https://bluebutton.cms.gov/resources/codesystem/hcpcs"
HCPCS_ALL_CODES = "http://terminology.hl7.org/CodeSystem/HCPCS-all-codes"
CPT = "http://www.ama-assn.org/go/cpt"
SNOMED = "http://snomed.info/sct"
POS = "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"
CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
PAYMENT_TYPE = "http://terminology.hl7.org/CodeSystem/ex-paymenttype"
CARC = "https://x12.org/codes/claim-adjustment-reason-codes"

BILLABLE_BASE = "https://billable.dev/fhir"
MAP_SNOMED_ICD10CM = f"{BILLABLE_BASE}/ConceptMap/snomed-to-icd10cm"
MAP_SNOMED_CPT = f"{BILLABLE_BASE}/ConceptMap/snomed-to-cpt-hcpcs"
MAP_SNOMED_PCS = f"{BILLABLE_BASE}/ConceptMap/snomed-to-icd10pcs"

ALIASES = {HCPCS_BLUEBUTTON: HCPCS, HCPCS_ALL_CODES: HCPCS, HCPCS_HTTP: HCPCS}

# Short names accepted by the CLI and the Python API in place of the URI.
SHORT_NAMES = {
    "icd10cm": ICD10CM,
    "icd-10-cm": ICD10CM,
    "icd10pcs": ICD10PCS,
    "icd-10-pcs": ICD10PCS,
    "hcpcs": HCPCS,
    "cpt": CPT,
    "snomed": SNOMED,
    "sct": SNOMED,
    "pos": POS,
    "carc": CARC,
}


def canonical(system: str) -> str:
    """The canonical URI for ``system`` (a URI, an HL7 alias or a short name)."""
    system = system.strip()
    if "|" in system:
        system = system.split("|", 1)[0]
    system = ALIASES.get(system, system)
    return SHORT_NAMES.get(system.lower(), system)


def normalize_code(system: str, code: str) -> str:
    """Codes as the code system spells them: ICD-10-CM with its dot, upper case."""
    code = code.strip()
    if system == ICD10CM:
        code = code.upper()
        if "." not in code and len(code) > 3:
            code = f"{code[:3]}.{code[3:]}"
    elif system in (ICD10PCS, HCPCS, CPT):
        code = code.upper()
    return code
