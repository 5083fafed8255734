"""AuditEvents validated and indexed through templates give exactly what the generic code gives.

``server.audit.prepared`` replaces per-event validation and index extraction by one
template per kind of request; these cases hold it to ``validate_resource`` and
``extract_index_values`` on the real event, for every kind of record the security
middleware and the engines write, and show that what a template cannot stand for
(an id that is no FHIR id, text with control characters) takes the generic way.
"""

from __future__ import annotations

import pytest

from server.audit.chain import HASH_URL, KEY_URL, PREVIOUS_HASH_URL, AuditRecord, build_event
from server.audit.prepared import PLACEHOLDER_ID, PreparedEvents
from server.errors import FhirError
from server.search.extract import extract_index_values
from server.storage.port import SearchIndex
from server.validation import validate_resource

RECORDS = [
    AuditRecord("R", "read", 200, "payer", "Practitioner/pr1", "127.0.0.1", "Claim/c1"),
    AuditRecord("R", "read", 404, "payer", None, "10.0.0.7", "Patient/p-9", None, "GET -> 404"),
    AuditRecord("R", "read", 200, "app", "Patient/p1", "::1", "Patient/p1", None, "GET ok"),
    AuditRecord("R", "vread", 200, "payer", None, "127.0.0.1", "Claim/c1/_history/3"),
    AuditRecord("C", "create", 201, "ehr", "alice", "127.0.0.1", "Encounter/e1/_history/1"),
    AuditRecord("E", "search-type", 200, None, None, None, None, "Claim?patient=p1&status=active"),
    AuditRecord("E", "operation", 200, "coder", None, "127.0.0.1", "Encounter", "_id=e1"),
    AuditRecord("E", "oauth-token", 400, None, None, "127.0.0.1", None, None, "bad grant"),
    AuditRecord("R", "capabilities", 200, None, None, "127.0.0.1"),
    AuditRecord("D", "delete", 500, "ehr", "Practitioner/x", "127.0.0.1", "Claim/c2"),
    AuditRecord("U", "update", 200, "engine", None, "127.0.0.1", "Claim/c3", None, "wrote 3"),
    AuditRecord("R", "read", 200, "payer", None, "127.0.0.1", "Claim/" + "a" * 64),
    AuditRecord("R", "read", 200, "payer", None, "127.0.0.1", "Claim/" + PLACEHOLDER_ID),
    AuditRecord("R", "history-instance", 200, "payer", None, "127.0.0.1", "Claim/c1", "_count=2"),
]
# Values a template cannot stand for: they must take the generic way, with its answer.
ODD_RECORDS = [
    AuditRecord("R", "read", 400, "payer", None, "127.0.0.1", "Claim/bad id with spaces"),
    AuditRecord("R", "read", 400, "payer", None, "127.0.0.1", "Claim/" + "a" * 65),
    AuditRecord("R", "read", 200, "payer", None, "127.0.0.1", "Claim/c1", None, "two\nlines"),
    AuditRecord("R", "read", 200, "payer", None, "127.0.0.1", "Claim/c1", None, "tab\there"),
    AuditRecord("E", "other", 404, None, None, "127.0.0.1", "Not/a/reference/at/all"),
]
INSTANTS = ["2026-12-01T10:11:12.123456Z", "2027-01-31T23:59:59.999999Z"]


def _event(record: AuditRecord, recorded: str, seq: int) -> dict:
    event = build_event(record, recorded)
    event["id"] = f"{seq:012d}"
    event["meta"] = {"versionId": "1", "lastUpdated": recorded}
    event["extension"] = [
        {"url": PREVIOUS_HASH_URL, "valueString": "0" * 64},
        {"url": KEY_URL, "valueString": "0123456789abcdef"},
        {"url": HASH_URL, "valueString": f"{seq:064x}"},
    ]
    return event


def _rows(index: SearchIndex) -> dict[str, list]:
    names = ("tokens", "strings", "references", "dates", "numbers", "quantities", "uris")
    rows = {name: sorted(getattr(index, name), key=repr) for name in names}
    rows["composites"] = sorted(index.composites, key=repr)
    return rows


def _generic(event: dict, recorded: str) -> SearchIndex:
    validate_resource(event)
    return extract_index_values(event, recorded)


@pytest.mark.parametrize("record", RECORDS + ODD_RECORDS, ids=lambda r: f"{r.interaction}")
def test_the_index_from_a_template_equals_the_generic_extraction(record: AuditRecord):
    prepared = PreparedEvents()
    for seq, recorded in enumerate(INSTANTS * 2, start=1):  # the second round hits the cache
        event = _event(record, recorded, seq)
        try:
            expected = _generic(event, recorded)
        except FhirError:
            with pytest.raises(FhirError):
                prepared.index(record, event, recorded)
            continue
        assert _rows(prepared.index(record, event, recorded)) == _rows(expected)


def test_one_template_serves_every_id_of_a_kind_and_keeps_each_id():
    prepared = PreparedEvents()
    for n in range(50):
        record = AuditRecord("R", "read", 200, "payer", None, "127.0.0.1", f"Claim/c{n}")
        index = prepared.index(record, _event(record, INSTANTS[0], n + 1), INSTANTS[0])
        assert ("entity", "Claim", f"c{n}", None) in index.references
    assert len(prepared._templates) == 1


def test_the_events_the_template_path_stores_are_valid_r4():
    for seq, record in enumerate(RECORDS, start=1):
        validate_resource(_event(record, INSTANTS[0], seq))


def test_templates_are_bounded_so_odd_paths_cannot_grow_them():
    prepared = PreparedEvents(max_templates=8)
    for n in range(40):
        record = AuditRecord("R", "read", 404, "payer", None, "127.0.0.1", f"Type{n}x/1")
        prepared.index(record, _event(record, INSTANTS[0], n + 1), INSTANTS[0])
    assert len(prepared._templates) <= 8


@pytest.mark.parametrize("record", RECORDS[:6], ids=lambda r: f"{r.interaction}")
def test_an_event_stored_later_than_it_happened_is_indexed_by_both_instants(record):
    """The journal commits a record after its request: ``date`` is when it happened,
    ``_lastUpdated`` when it was stored."""
    prepared = PreparedEvents()
    happened, stored = INSTANTS
    for seq in (1, 2):
        event = _event(record, happened, seq)
        event["meta"]["lastUpdated"] = stored
        expected = _generic(event, stored)
        assert _rows(prepared.index(record, event, happened, stored)) == _rows(expected)
