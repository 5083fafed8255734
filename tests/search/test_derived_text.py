"""``:text`` of a parameter that is the union of others searches their rows instead.

Observation's ``combo-code`` is ``code | component.code`` (likewise
``combo-value-concept`` and ``combo-data-absent-reason``). Its ``:text`` rows were the
``code:text`` and ``component-code:text`` rows again, so they are no longer stored and
``combo-code:text=x`` is searched as ``code:text=x`` OR ``component-code:text=x``
(``extract.derived_text``). Each case below runs on both backends, on a store written
now and on one written with the rows stores made before this change (every
``combo-*:text`` row present), through the HTTP API: the answers must be the same.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.bundles import transaction
from server.config import Settings
from server.repository import base
from server.search import extract
from server.search.registry import registry
from server.storage.port import SearchIndex
from tests.search.conftest import FHIR_JSON, ids_of
from tests.support.ferretdb import with_database

LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"

RESOURCES: list[dict[str, Any]] = [
    {"resourceType": "Patient", "id": "pa", "name": [{"family": "Alpha"}]},
    {"resourceType": "Patient", "id": "pb", "name": [{"family": "Beta"}]},
    {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "subject": {"reference": "Patient/pa"},
        "code": {
            "coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}],
            "text": "BP panel",
        },
        "component": [
            {
                "code": {
                    "coding": [
                        {"system": LOINC, "code": "8480-6", "display": "Systolic blood pressure"}
                    ]
                },
                "valueQuantity": {"value": 120},
            },
            {
                "code": {"text": "Diastolic blood pressure"},
                "valueCodeableConcept": {"text": "Normal finding"},
            },
        ],
    },
    {
        "resourceType": "Observation",
        "id": "o2",
        "status": "final",
        "subject": {"reference": "Patient/pb"},
        "code": {"text": "Tobacco smoking status"},
        "valueCodeableConcept": {
            "coding": [{"system": SCT, "code": "266919005", "display": "Never smoker"}]
        },
    },
    {
        "resourceType": "Observation",
        "id": "o3",
        "status": "final",
        "subject": {"reference": "Patient/pb"},
        "code": {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}]},
        "dataAbsentReason": {"text": "Not asked"},
        "component": [
            {
                "code": {"text": "Pulse"},
                "dataAbsentReason": {"coding": [{"code": "unknown", "display": "Unknown value"}]},
            }
        ],
    },
    {
        "resourceType": "DiagnosticReport",
        "id": "dr1",
        "status": "final",
        "code": {"text": "Vitals"},
        "subject": {"reference": "Patient/pa"},
        "result": [{"reference": "Observation/o1"}],
    },
]

CASES: list[tuple[str, str, set[str]]] = [
    ("Observation", "combo-code:text=blood", {"o1"}),  # the code's display and a component's
    ("Observation", "combo-code:text=diastolic", {"o1"}),  # a component's text only
    ("Observation", "combo-code:text=bp", {"o1"}),  # the code's text only
    ("Observation", "combo-code:text=smoking", {"o2"}),  # a word inside the text
    ("Observation", "combo-code:text=pulse,tobacco", {"o2", "o3"}),
    ("Observation", "combo-code:text=pressure&combo-code:text=panel", {"o1"}),
    ("Observation", "combo-code:text=heart&status=final", {"o3"}),
    ("Observation", "combo-code:text=nothing", set()),
    ("Observation", "code:text=diastolic", set()),  # the resource's code only
    ("Observation", "component-code:text=diastolic", {"o1"}),
    ("Observation", "combo-value-concept:text=normal", {"o1"}),
    ("Observation", "combo-value-concept:text=never", {"o2"}),
    ("Observation", "combo-data-absent-reason:text=not asked", {"o3"}),
    ("Observation", "combo-data-absent-reason:text=unknown", {"o3"}),
    ("Observation", "combo-code:missing=true", {"o2"}),  # tokens: o2's code has none
    ("Patient", "_has:Observation:subject:combo-code:text=pulse", {"pb"}),
    ("Patient", "_has:Observation:subject:combo-code:text=systolic", {"pa"}),
    ("DiagnosticReport", "result.combo-code:text=diastolic", {"dr1"}),
    ("DiagnosticReport", "result.combo-code:text=pulse", set()),
]


def with_rows_of_before(resource: dict[str, Any], last_updated: str | None = None) -> SearchIndex:
    """The index as extraction made it before: the derived parameters' own ``:text``
    rows too (their nodes through the token rule with text, as every parameter was)."""
    index = extract.extract_index_values(resource, last_updated)
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or not extract.derived_text(rtype):
        return index
    collector = extract._Collector()
    for code in extract.derived_text(rtype):
        param = registry().get(rtype, code)
        assert param is not None and param.evaluate is not None
        for node in param.evaluate(resource):
            extract._token(collector, code, node)
    old = tuple(row for row in collector.strings if row[0].endswith(":text"))
    return dataclasses.replace(index, strings=(*index.strings, *old))


@pytest.fixture(
    scope="module",
    params=[("sqlite", "now"), ("sqlite", "before"), ("mongo", "now"), ("mongo", "before")],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, str, str]]:
    backend, written = request.param
    database = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('derived') / 'billable.db'}"
    else:
        database = f"test_derived_{uuid.uuid4().hex[:12]}"
        url = with_database(request.getfixturevalue("mongo_uri"), database)
    app = create_app(Settings(store_url=url, auth="off"))
    patch = pytest.MonkeyPatch()
    if written == "before":
        patch.setattr(base, "extract_index_values", with_rows_of_before)
        patch.setattr(transaction, "extract_index_values", with_rows_of_before)
    try:
        with TestClient(app, base_url="http://testserver") as client:
            for resource in RESOURCES:
                r = client.put(
                    f"/fhir/{resource['resourceType']}/{resource['id']}",
                    json=resource,
                    headers=FHIR_JSON,
                )
                assert r.status_code in (200, 201), r.text
            patch.undo()  # searching extracts nothing; the rows are those written
            yield client, url, written
    finally:
        patch.undo()
        if database is not None:
            mongo: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(url)
            mongo.drop_database(database)
            mongo.close()


@pytest.mark.parametrize(
    ("rtype", "query", "expected"), CASES, ids=[f"{t}?{q}" for t, q, _ in CASES]
)
def test_derived_text_search_finds_the_same_resources_on_every_store(
    loaded: tuple[TestClient, str, str], rtype: str, query: str, expected: set[str]
) -> None:
    client, _, _ = loaded
    r = client.get(f"/fhir/{rtype}?{query}&_count=100", headers={"Prefer": "handling=strict"})
    assert r.status_code == 200, r.text
    assert ids_of(r.json()) == expected


def test_a_store_written_now_holds_no_derived_text_rows_and_one_written_before_does(
    loaded: tuple[TestClient, str, str],
) -> None:
    _, url, written = loaded
    derived = [f"{p}:text" for p in extract.derived_text("Observation")]
    if url.startswith("sqlite:///"):
        with sqlite3.connect(Path(url.removeprefix("sqlite:///"))) as c:
            params = {
                row[0]
                for row in c.execute(
                    "SELECT DISTINCT t.param FROM sp_string s JOIN sp_string_terms t"
                    " ON t.term = s.term"
                )
            }
    else:
        mongo: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(url)
        try:
            db = mongo.get_default_database()
            params = {
                s.split("\x1f", 1)[0]
                for name in db.list_collection_names()
                for doc in db[name].find({"idx.s": {"$exists": True}}, {"idx.s": 1})
                for s in doc["idx"]["s"]
            }
        finally:
            mongo.close()
    assert "code:text" in params and "component-code:text" in params
    if written == "now":
        assert not params.intersection(derived)
    else:
        assert set(derived) <= params
