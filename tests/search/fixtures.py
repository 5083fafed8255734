"""A hand-built data set and a table of search cases: (type, query, exact ids expected).

The same table runs on every backend (``test_cases.py``); each row names the feature
it covers in its query, so a failure reads as the spec line that broke.
"""

from __future__ import annotations

from typing import Any

SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
MRN = "urn:oid:1.2.3.4.5"
V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def _patient(pid: str, family: str, given: str, birth: str | None, **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"family": family, "given": [given]}],
        **extra,
    }
    if birth:
        res["birthDate"] = birth
    return res


RESOURCES: list[dict[str, Any]] = [
    _patient(
        "p1",
        "Müller",
        "Zoë",
        "1980-02-29",
        gender="female",
        identifier=[
            {
                "system": MRN,
                "value": "A1",
                "type": {"coding": [{"system": V2, "code": "MR"}], "text": "Medical record"},
            }
        ],
        telecom=[{"system": "email", "value": "zoe@example.org"}],
        meta={"tag": [{"system": "urn:tags", "code": "vip"}], "profile": ["http://x.org/p/Pat"]},
    ),
    _patient("p2", "Muller", "Adam", "1990-06", gender="male", identifier=[{"value": "A2"}]),
    _patient("p3", "Smith", "Ann", "2001", gender="female", active=True),
    _patient("p4", "de la Cruz", "José", None),  # no birthDate, no gender
    {
        "resourceType": "Organization",
        "id": "o1",
        "name": "Acme Health",
        "address": [{"city": "Boston", "state": "MA", "line": ["1 Main St"]}],
    },
    {
        "resourceType": "Practitioner",
        "id": "dr1",
        "name": [{"family": "House", "given": ["Greg"]}],
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567890"}],
    },
    {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/p1"},
        "participant": [{"individual": {"reference": "Practitioner/dr1"}}],
        "serviceProvider": {"reference": "Organization/o1"},
        "period": {"start": "2024-01-10T09:00:00+02:00", "end": "2024-01-10T10:00:00+02:00"},
        "length": {"value": 60, "unit": "min", "system": UCUM, "code": "min"},
    },
    {
        "resourceType": "Encounter",
        "id": "e2",
        "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": "Patient/p2"},
        "period": {"start": "2024-03-01"},  # open-ended
    },
    {
        "resourceType": "Encounter",
        "id": "e3",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2023-12-31T23:30:00Z", "end": "2024-01-01T00:30:00Z"},
    },
    {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "code": {
            "coding": [
                {"system": SCT, "code": "44054006", "display": "Diabetes mellitus type 2"},
                {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"},
            ],
            "text": "Type 2 diabetes",
        },
        "onsetDateTime": "2020-05",
        "recordedDate": "2024-01-10",
    },
    {
        "resourceType": "Condition",
        "id": "c2",
        "subject": {"reference": "Patient/p2"},
        "code": {"coding": [{"system": SCT, "code": "38341003"}], "text": "Hypertension"},
        "onsetPeriod": {"start": "2019-01-01", "end": "2019-12-31"},
    },
    {
        "resourceType": "Condition",
        "id": "c3",
        "subject": {"reference": "Patient/p3"},
        "code": {"coding": [{"code": "local-1"}]},  # no system
    },
    {
        "resourceType": "Observation",
        "id": "obs1",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-01-10T09:30:00Z",
        "valueQuantity": {"value": 120, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
    },
    {
        "resourceType": "Observation",
        "id": "obs2",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
        "subject": {"reference": "Patient/p2"},
        "effectiveDateTime": "2024-02-01",
        "valueQuantity": {"value": 145.5, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
    },
    {
        "resourceType": "Observation",
        "id": "obs3",
        "status": "preliminary",
        "code": {"coding": [{"system": LOINC, "code": "2339-0"}]},
        "subject": {"reference": "Patient/p3"},
        "valueString": "Positive",
    },
    {
        "resourceType": "Claim",
        "id": "cl1",
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
        "patient": {"reference": "Patient/p1"},
        "created": "2024-01-11",
        "provider": {"reference": "Organization/o1"},
        "priority": {"coding": [{"code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/cov1"}}],
        "item": [
            {
                "sequence": 1,
                "productOrService": {
                    "coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "99213"}]
                },
                "encounter": [{"reference": "Encounter/e1"}],
            }
        ],
    },
    {
        "resourceType": "Claim",
        "id": "cl2",
        "status": "active",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                    "code": "institutional",
                }
            ]
        },
        "use": "claim",
        "patient": {"reference": "Patient/p2"},
        "created": "2024-03-05T12:00:00-05:00",
        "provider": {"reference": "Organization/o1"},
        "priority": {"coding": [{"code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/cov1"}}],
    },
    {
        "resourceType": "Claim",
        "id": "cl3",
        "status": "cancelled",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                    "code": "professional",
                }
            ]
        },
        "use": "claim",
        "patient": {"reference": "Patient/p1"},
        "created": "2023-06-15",
        "provider": {"reference": "Organization/o1"},
        "priority": {"coding": [{"code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/cov1"}}],
    },
    {
        "resourceType": "Questionnaire",
        "id": "q1",
        "status": "active",
        "url": "http://example.org/fhir/Questionnaire/diabetes",
    },
    {
        "resourceType": "Questionnaire",
        "id": "q2",
        "status": "active",
        "url": "http://example.org/fhir/Questionnaire/diabetes/type2",
    },
]

# (resource type, query, ids expected): the exact set of ids of the matches.
CASES: list[tuple[str, str, set[str]]] = [
    # -- token ---------------------------------------------------------------------
    ("Patient", "gender=female", {"p1", "p3"}),
    ("Patient", "gender=female,male", {"p1", "p2", "p3"}),
    ("Patient", "gender:not=female", {"p2", "p4"}),
    ("Patient", "gender:missing=true", {"p4"}),
    ("Patient", "gender:missing=false", {"p1", "p2", "p3"}),
    ("Patient", f"identifier={MRN}|A1", {"p1"}),
    ("Patient", "identifier=A1", {"p1"}),
    ("Patient", "identifier=|A2", {"p2"}),
    ("Patient", "identifier=|A1", set()),
    ("Patient", f"identifier={MRN}|", {"p1"}),
    ("Patient", f"identifier:of-type={V2}|MR|A1", {"p1"}),
    ("Patient", "identifier:text=medical", {"p1"}),
    ("Patient", "active=true", {"p3"}),
    ("Patient", "email=zoe@example.org", {"p1"}),
    ("Condition", f"code={SCT}|44054006", {"c1"}),
    ("Condition", "code=E11.9", {"c1"}),  # the second coding
    ("Condition", f"code={SCT}|", {"c1", "c2"}),
    ("Condition", "code=|local-1", {"c3"}),
    ("Condition", "code:text=diabetes", {"c1"}),
    ("Condition", "code:text=hyper", {"c2"}),
    ("Condition", f"code:not={SCT}|44054006", {"c2", "c3"}),
    ("Claim", "status=active&use=claim", {"cl1", "cl2"}),
    ("Patient", "_tag=urn:tags|vip", {"p1"}),
    ("Patient", "_id=p1,p3", {"p1", "p3"}),
    ("Patient", "_id=p1&_id=p3", set()),
    # -- string --------------------------------------------------------------------
    ("Patient", "name=muller", {"p1", "p2"}),  # accents and case
    ("Patient", "name=MÜL", {"p1", "p2"}),
    ("Patient", "family=zoe", set()),
    ("Patient", "given=zoe", {"p1"}),
    ("Patient", "name:exact=Müller", {"p1"}),
    ("Patient", "name:exact=muller", set()),
    ("Patient", "name:contains=ULL", {"p1", "p2"}),
    ("Patient", "name:contains=cruz", {"p4"}),
    ("Patient", "name=de la", {"p4"}),
    ("Patient", "name=smith,house", {"p3"}),
    ("Patient", "name=m&name=adam", {"p2"}),
    ("Organization", "address-city=bost", {"o1"}),
    ("Organization", "address=1 main", {"o1"}),
    ("Organization", "address=main", set()),  # starts-with, not contains
    ("Organization", "name:missing=false", {"o1"}),
    # -- reference -----------------------------------------------------------------
    ("Encounter", "subject=Patient/p1", {"e1", "e3"}),
    ("Encounter", "patient=p1", {"e1", "e3"}),
    ("Encounter", "subject:Patient=p1", {"e1", "e3"}),
    ("Encounter", "patient=http://testserver/fhir/Patient/p2", {"e2"}),
    ("Encounter", "participant=Practitioner/dr1", {"e1"}),
    ("Encounter", "service-provider:missing=true", {"e2", "e3"}),
    ("Claim", "patient=p1,p2&status=active", {"cl1", "cl2"}),
    # -- chains and _has -----------------------------------------------------------
    ("Claim", "patient.name=muller", {"cl1", "cl2", "cl3"}),
    ("Claim", "patient.given=zoe", {"cl1", "cl3"}),
    ("Encounter", f"subject:Patient.identifier={MRN}|A1", {"e1", "e3"}),
    ("Condition", "encounter.participant.identifier=1234567890", {"c1"}),  # depth 2
    ("Claim", "patient.gender:missing=false&created=ge2024", {"cl1", "cl2"}),
    ("Patient", "_has:Encounter:patient:status=finished", {"p1"}),
    ("Patient", f"_has:Condition:subject:code={SCT}|38341003", {"p2"}),
    ("Patient", "_has:Encounter:patient:_has:Condition:encounter:code=E11.9", {"p1"}),
    ("Patient", "_has:Encounter:patient:_has:Condition:encounter:code=nothing", set()),
    # -- date ----------------------------------------------------------------------
    ("Patient", "birthdate=1980", {"p1"}),
    ("Patient", "birthdate=1980-02-29", {"p1"}),
    ("Patient", "birthdate=1990-06-15", set()),  # resource range (June) is wider
    ("Patient", "birthdate=ge1990", {"p2", "p3"}),
    ("Patient", "birthdate=gt1990-06", {"p3"}),
    ("Patient", "birthdate=lt1990-06-30", {"p1", "p2"}),
    ("Patient", "birthdate=le1980-02-29", {"p1"}),
    ("Patient", "birthdate=ne1980", {"p2", "p3"}),
    ("Patient", "birthdate=sa1990", {"p3"}),
    ("Patient", "birthdate=eb1990", {"p1"}),
    ("Patient", "birthdate=ap1980-03", {"p1"}),
    ("Patient", "birthdate=ge1981&birthdate=le1995", {"p2"}),
    ("Patient", "birthdate:missing=true", {"p4"}),
    ("Encounter", "date=2024-01-10", {"e1"}),
    ("Encounter", "date=2024-01-10T07:00:00Z", set()),  # offsets: e1 is 07:00-08:00Z
    ("Encounter", "date=ge2024-01-10T07:30:00Z", {"e1", "e2"}),
    ("Encounter", "date=lt2024-01-10T07:00:00Z", {"e3"}),
    ("Encounter", "date=2024-01", {"e1"}),  # e3 straddles the new year
    ("Encounter", "date=ge2030-01-01", {"e2"}),  # open-ended period
    ("Encounter", "date=2023", set()),
    ("Encounter", "date=ge2023-12-31T23:00:00-01:00", {"e1", "e2", "e3"}),
    ("Condition", "onset-date=2020", {"c1"}),
    ("Condition", "onset-date=le2019-06-01", {"c2"}),
    ("Claim", "created=2024-03-05", {"cl2"}),  # 17:00Z, same local day
    ("Claim", "created=ge2024-01-01&created=lt2024-02", {"cl1"}),
    ("Observation", "date=2024-01-10", {"obs1"}),
    # -- number and quantity -------------------------------------------------------
    ("Observation", "value-quantity=120", {"obs1"}),
    ("Observation", f"value-quantity=120|{UCUM}|mm[Hg]", {"obs1"}),
    ("Observation", "value-quantity=120||mmHg", {"obs1"}),
    ("Observation", "value-quantity=gt130", {"obs2"}),
    ("Observation", "value-quantity=le145.5", {"obs1", "obs2"}),
    ("Observation", "value-quantity=145", set()),
    ("Observation", "value-quantity=1.5e2", {"obs2"}),
    ("Observation", "value-quantity=ap150", {"obs2"}),
    ("Observation", "value-quantity=ne120", {"obs2"}),
    ("Observation", "value-quantity:missing=true", {"obs3"}),
    ("Observation", f"value-quantity=120|{UCUM}|mg", set()),
    ("Encounter", "length=gt30", {"e1"}),
    # -- uri -----------------------------------------------------------------------
    ("Questionnaire", "url=http://example.org/fhir/Questionnaire/diabetes", {"q1"}),
    ("Questionnaire", "url:below=http://example.org/fhir/Questionnaire/diabetes", {"q1", "q2"}),
    (
        "Questionnaire",
        "url:above=http://example.org/fhir/Questionnaire/diabetes/type2",
        {"q1", "q2"},
    ),
    ("Patient", "_profile=http://x.org/p/Pat", {"p1"}),
    # -- composite -----------------------------------------------------------------
    ("Observation", f"code-value-quantity={LOINC}|8480-6$gt130", {"obs2"}),
    ("Observation", f"code-value-quantity={LOINC}|8480-6$120|{UCUM}|mm[Hg]", {"obs1"}),
    ("Observation", f"code-value-quantity={LOINC}|2339-0$gt1", set()),
    ("Observation", f"code-value-string={LOINC}|2339-0$pos", {"obs3"}),
    # -- compartments and _lastUpdated ---------------------------------------------
    ("Patient", "_lastUpdated=gt2000-01-01", {"p1", "p2", "p3", "p4"}),
    ("Patient", "_lastUpdated=lt2000-01-01", set()),
]
