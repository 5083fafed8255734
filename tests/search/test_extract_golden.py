"""Index extraction is pinned to the rows the extractor produced before it was tuned.

``data/extract_golden.json.gz`` holds, for every resource of the Synthea fixtures, the
search fixtures and a few hand-built edge cases below, the index rows
``extract_index_values`` returned at commit 7ad3c8a (before the session-4 speed work).
Identical rows give identical search results on both backends, so a speed change to
extraction that alters any row of any resource fails here, naming the resource.

One change is intended: the ``:text`` rows of a parameter that is the union of others
(``extract.derived_text``: Observation's ``combo-code``...) are no longer stored, and
its ``:text`` searches theirs. The pinned rows still hold them (they are what stores
written before hold), so the test drops exactly those from the pin and checks, on
every resource, that they were the union of the rows searched instead.

The file was written by ``python -m tests.search.test_extract_golden`` run against the
7ad3c8a extractor (``server`` of that commit first on ``sys.path``). After an intended
change to what is indexed, rewrite it the same way and say why in the commit.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson

from server.search.extract import derived_text, extract_index_values
from server.storage.port import SearchIndex
from server.validation import validate_resource
from tests.search.fixtures import RESOURCES

GOLDEN = Path(__file__).parent / "data" / "extract_golden.json.gz"
SYNTHEA = Path(__file__).parent.parent / "fixtures" / "synthea"
LAST_UPDATED = "2026-03-04T05:06:07.890Z"
KINDS = ("tokens", "strings", "references", "dates", "numbers", "quantities", "uris")

# Shapes the Synthea feed lacks: Money, Range, Timing, ContactPoint, typed identifiers,
# Reference.identifier, canonicals with a version, deceased, components of every kind
# (each one valid R4: only valid resources are stored and indexed).
EDGE_CASES: list[dict[str, Any]] = [
    {
        "resourceType": "Patient",
        "id": "edge-patient",
        "deceasedDateTime": "2020-02-03T04:05:06+02:00",
        "multipleBirthInteger": 2,
        "telecom": [
            {"system": "phone", "value": "555-0100"},
            {"system": "email", "value": "x@example.org"},
        ],
        "identifier": [
            {
                "system": "urn:oid:1.2",
                "value": "MRN-9",
                "type": {"coding": [{"system": "urn:v2", "code": "MR"}], "text": "Chart no"},
            }
        ],
        "name": [
            {"use": "official", "family": "Ôdin", "given": ["Ása", "Björk"], "prefix": ["Dr"]}
        ],
        "address": [{"line": ["1 Main St", "Apt 2"], "city": "Salem", "postalCode": "01970"}],
        "generalPractitioner": [{"identifier": {"system": "urn:npi", "value": "123"}}],
        "link": [
            {
                "other": {"reference": "http://other.example/fhir/Patient/9/_history/2"},
                "type": "seealso",
            }
        ],
    },
    {
        "resourceType": "Observation",
        "id": "edge-observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}], "text": "BP"},
        "subject": {"reference": "Patient/edge-patient", "display": "Ása"},
        "effectiveTiming": {"event": ["2024-01-02", "2024-01-03T10:00:00Z"]},
        "valueRange": {
            "low": {"value": 1, "unit": "mg"},
            "high": {"value": 3, "system": "http://unitsofmeasure.org", "code": "mg"},
        },
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                "valueQuantity": {
                    "value": 120,
                    "unit": "mmHg",
                    "system": "http://unitsofmeasure.org",
                    "code": "mm[Hg]",
                },
            },
            {"code": {"text": "note"}, "valueString": "Quite High"},
            {
                "code": {"coding": [{"code": "x"}]},
                "valueCodeableConcept": {"coding": [{"system": "urn:s", "code": "H"}]},
                "dataAbsentReason": {"coding": [{"code": "unknown"}], "text": "Not asked"},
            },
            {"code": {"coding": [{"code": "p"}]}, "valuePeriod": {"start": "2024-02"}},
        ],
    },
    {
        "resourceType": "Claim",
        "id": "edge-claim",
        "status": "active",
        "use": "claim",
        "type": {"coding": [{"code": "professional"}]},
        "priority": {"coding": [{"code": "normal"}]},
        "provider": {"reference": "Organization/o1"},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/c1"}}],
        "created": "2024-05",
        "total": {"value": 12.5, "currency": "USD"},
        "patient": {"reference": "urn:uuid:1234"},
        "item": [
            {
                "sequence": 1,
                "productOrService": {"coding": [{"code": "99213"}]},
                "servicedPeriod": {"end": "2024-05-02"},
                "encounter": [{"reference": "Encounter/e9"}],
                "udi": [{"reference": "Device/dev1"}],
            }
        ],
    },
    {
        "resourceType": "MedicationRequest",
        "id": "edge-medreq",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"code": "313782", "display": "Acetaminophen"}]},
        "subject": {"reference": "Patient/edge-patient"},
        "instantiatesCanonical": ["http://x.org/PlanDefinition/pd|1.0"],
        "dosageInstruction": [
            {"timing": {"repeat": {"boundsPeriod": {"start": "2024-01-01", "end": "2024-02"}}}}
        ],
    },
    {
        "resourceType": "RiskAssessment",
        "id": "edge-risk",
        "status": "final",
        "subject": {"reference": "Patient/edge-patient"},
        "occurrenceDateTime": "2024-03-04T05:06:07Z",
        "prediction": [{"probabilityDecimal": 0.25, "outcome": {"text": "Heart attack"}}],
    },
    {
        "resourceType": "Coverage",
        "id": "edge-coverage",
        "status": "active",
        "beneficiary": {"reference": "Patient/edge-patient"},
        "payor": [{"reference": "Organization/o1", "display": "Medicaid"}],
        "class": [{"type": {"coding": [{"code": "group"}]}, "value": "G1", "name": "Group"}],
        "period": {"start": "2024-01-01"},
    },
    {
        "resourceType": "AllergyIntolerance",
        "id": "edge-allergy",
        "patient": {"reference": "Patient/edge-patient"},
        "onsetAge": {"value": 4, "unit": "a", "system": "http://unitsofmeasure.org"},
        "code": {"coding": [{"system": "urn:sct", "code": "91935009", "display": "Peanut"}]},
        "reaction": [{"manifestation": [{"text": "Hives"}], "severity": "mild"}],
    },
    {
        "resourceType": "Questionnaire",
        "id": "edge-questionnaire",
        "status": "active",
        "url": "http://x.org/Questionnaire/q",
        "version": "2",
        "useContext": [
            {
                "code": {"system": "urn:uc", "code": "focus"},
                "valueCodeableConcept": {"coding": [{"system": "urn:sct", "code": "123"}]},
            },
            {"code": {"code": "age"}, "valueRange": {"low": {"value": 18}}},
        ],
    },
]


def corpus() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(SYNTHEA.glob("*.json")):
        bundle = orjson.loads(path.read_bytes())
        out.extend(e["resource"] for e in bundle.get("entry", []) if "resource" in e)
    return out + RESOURCES + EDGE_CASES


def canonical(index: SearchIndex) -> dict[str, list[Any]]:
    """The rows as sorted lists (a set of rows per kind: storage order carries no meaning)."""
    out: dict[str, list[Any]] = {
        kind: sorted((list(row) for row in getattr(index, kind)), key=repr) for kind in KINDS
    }
    out["composites"] = sorted(
        ([param, [list(part) for part in parts]] for param, parts in index.composites), key=repr
    )
    return out


def label(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource.get('id')}"


def current() -> dict[str, dict[str, list[Any]]]:
    return {label(r): canonical(extract_index_values(r, LAST_UPDATED)) for r in corpus()}


def derived_rows(resource_type: str) -> dict[str, tuple[str, ...]]:
    """``combo-code:text`` -> (``code:text``, ``component-code:text``)..."""
    return {f"{p}:text": names for p, names in derived_text(resource_type).items()}


def test_every_resource_of_the_corpus_extracts_exactly_the_pinned_rows():
    golden = orjson.loads(gzip.decompress(GOLDEN.read_bytes()))
    got = orjson.loads(orjson.dumps(current()))  # tuples -> lists, as stored
    assert len(got) >= 700 and got.keys() == golden.keys()
    for name, rows in golden.items():
        dropped = derived_rows(name.split("/")[0])
        for kind, expected in rows.items():
            if kind == "strings":
                expected = [row for row in expected if row[0] not in dropped]
            assert got[name][kind] == expected, f"{name}: {kind} rows differ"


def test_each_dropped_text_row_set_is_the_union_of_the_rows_its_search_reads_instead():
    golden = orjson.loads(gzip.decompress(GOLDEN.read_bytes()))
    checked = 0
    for name, rows in golden.items():
        for derived, sources in derived_rows(name.split("/")[0]).items():
            pinned = {(n, x) for p, n, x in rows["strings"] if p == derived}
            union = {(n, x) for p, n, x in rows["strings"] if p in sources}
            assert pinned == union, f"{name}: {derived}"
            checked += bool(pinned)
    assert checked >= 150  # the Synthea Observations, components included


def test_the_corpus_reaches_every_kind_of_row_and_the_edge_shapes():
    golden = orjson.loads(gzip.decompress(GOLDEN.read_bytes()))
    for kind in (*KINDS, "composites"):
        assert any(rows[kind] for rows in golden.values()), kind
    edge = golden["Observation/edge-observation"]
    assert {c[0] for c in edge["composites"]} >= {
        "component-code-value-quantity",
        "component-code-value-concept",
        "combo-code-value-quantity",
    }
    patient = golden["Patient/edge-patient"]
    assert any(t[0] == "identifier:of-type" for t in patient["tokens"])
    assert any(t[0] == "general-practitioner:identifier" for t in patient["tokens"])
    assert golden["RiskAssessment/edge-risk"]["numbers"]


def test_the_edge_cases_are_valid_r4_resources():
    for resource in EDGE_CASES:
        validate_resource(resource)  # raises FhirError with the issues otherwise


if __name__ == "__main__":
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_bytes(gzip.compress(orjson.dumps(current()), mtime=0))
    print(f"wrote {GOLDEN}")
