"""The two patients of the attack table, and the bytes of B's that must never leak.

Patient A is the attacker (every case runs with A's token unless it says otherwise);
patient B is the victim. Every string of B's that identifies B (ids, identifiers,
names, codes and texts unique to B) is a *marker*: a response that contains a marker
the request did not itself contain has leaked B's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class PatientData:
    key: str  # "alpha" | "bravo"
    patient_id: str
    ssn: str
    family: str
    given: str
    icd10: str
    condition_text: str
    claim_identifier: str
    subscriber_id: str

    def rid(self, rtype: str) -> str:
        """The id of this patient's resource of ``rtype``."""
        if rtype == "Patient":
            return self.patient_id
        return f"{rtype.lower()}-{self.key}-1"

    @property
    def markers(self) -> tuple[str, ...]:
        ids = tuple(self.rid(t) for t in RESOURCE_TYPES)
        return (
            *ids,
            self.ssn,
            self.family,
            self.given,
            self.icd10,
            self.condition_text,
            self.claim_identifier,
            self.subscriber_id,
        )


A = PatientData(
    "alpha",
    "pat-alpha-7a1",
    "111-22-3331",
    "Adeyemialpha",
    "Amara",
    "E11.9",
    "alpha-diabetes-marker",
    "CLM-ALPHA-1142",
    "SUB-ALPHA-2290",
)
B = PatientData(
    "bravo",
    "pat-bravo-9c4",
    "987-65-4329",
    "Quixotebravo",
    "Zebulon",
    "J45.909",
    "bravo-asthma-marker",
    "CLM-BRAVO-7781",
    "SUB-BRAVO-5512",
)
# Types each patient has one resource of (Patient first: the others point to it).
RESOURCE_TYPES = (
    "Patient",
    "Encounter",
    "Condition",
    "Procedure",
    "Observation",
    "Coverage",
    "Claim",
)
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
CLAIM_SYSTEM = "urn:billable:test:claim-number"


def _ref(p: PatientData, rtype: str) -> dict[str, str]:
    return {"reference": f"{rtype}/{p.rid(rtype)}"}


def resources_of(p: PatientData) -> list[dict[str, Any]]:
    """The patient's data: valid R4 resources, each in the patient's compartment."""
    subject = _ref(p, "Patient")
    return [
        {
            "resourceType": "Patient",
            "id": p.patient_id,
            "identifier": [{"system": SSN_SYSTEM, "value": p.ssn}],
            "name": [{"family": p.family, "given": [p.given]}],
            "gender": "female" if p.key == "alpha" else "male",
            "birthDate": "1970-01-01" if p.key == "alpha" else "1985-06-15",
        },
        {
            "resourceType": "Encounter",
            "id": p.rid("Encounter"),
            "status": "finished",
            "class": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "AMB",
            },
            "subject": subject,
            "period": {"start": "2026-10-01T09:00:00Z", "end": "2026-10-01T09:30:00Z"},
        },
        {
            "resourceType": "Condition",
            "id": p.rid("Condition"),
            "subject": subject,
            "encounter": _ref(p, "Encounter"),
            "code": {
                "coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": p.icd10}],
                "text": p.condition_text,
            },
        },
        {
            "resourceType": "Procedure",
            "id": p.rid("Procedure"),
            "status": "completed",
            "subject": subject,
            "encounter": _ref(p, "Encounter"),
            "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "99213"}]},
        },
        {
            "resourceType": "Observation",
            "id": p.rid("Observation"),
            "status": "final",
            "code": {"text": f"{p.key} measurement"},
            "subject": subject,
            "encounter": _ref(p, "Encounter"),
        },
        {
            "resourceType": "Coverage",
            "id": p.rid("Coverage"),
            "status": "active",
            "subscriberId": p.subscriber_id,
            "beneficiary": subject,
            "payor": [{"reference": "Organization/payer-org-1"}],
        },
        {
            "resourceType": "Claim",
            "id": p.rid("Claim"),
            "identifier": [{"system": CLAIM_SYSTEM, "value": p.claim_identifier}],
            "status": "active",
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                        "code": "professional",
                    }
                ]
            },
            "use": "claim",
            "patient": subject,
            "created": "2026-10-02",
            "provider": {"reference": "Organization/provider-org-1"},
            "priority": {"coding": [{"code": "normal"}]},
            "insurance": [{"sequence": 1, "focal": True, "coverage": _ref(p, "Coverage")}],
            "diagnosis": [
                {
                    "sequence": 1,
                    "diagnosisCodeableConcept": {
                        "coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": p.icd10}]
                    },
                }
            ],
        },
    ]
