"""The input limits of the shared layers, one by one (no server process: pure checks).

The attack table shows them over HTTP; these pin each limit's edge.
"""

from __future__ import annotations

from typing import Any

import pytest

from server.api.body import (
    MAX_DEPTH,
    MAX_VALUES_PER_RESOURCE,
    _parse_and_check,
    check_json_shape,
)
from server.api.ids import check_id, check_version_tag, version_number
from server.api.patch import check_patch_document
from server.errors import FhirError
from server.search.parse import MAX_PARAMETERS, MAX_VALUES, check_search_size


def nested(depth: int) -> Any:
    """A JSON value ``depth`` containers deep: a resource whose extension nests lists."""
    value: Any = []
    for _ in range(depth - 2):
        value = [value]
    return {"resourceType": "Basic", "extension": value}


def status_of(call: Any) -> int:
    with pytest.raises(FhirError) as caught:
        call()
    return caught.value.status


def test_json_as_deep_as_the_limit_is_accepted_and_one_level_more_is_a_400():
    check_json_shape(nested(MAX_DEPTH))
    with pytest.raises(FhirError) as caught:
        check_json_shape(nested(MAX_DEPTH + 1))
    assert caught.value.status == 400
    assert str(MAX_DEPTH) in str(caught.value)


def test_json_deeper_than_the_parser_allows_names_the_same_limit():
    body = b'{"resourceType":"Basic","extension":' + b"[" * 1100 + b"]" * 1100 + b"}"
    with pytest.raises(FhirError) as caught:
        _parse_and_check(body, resource=True)
    assert caught.value.status == 400 and str(MAX_DEPTH) in str(caught.value)


def test_a_resource_with_too_many_values_is_a_413():
    names = [{"family": f"F{i}"} for i in range(MAX_VALUES_PER_RESOURCE // 2)]
    assert status_of(lambda: check_json_shape({"resourceType": "Patient", "name": names})) == 413


def test_each_transaction_entry_counts_on_its_own():
    names = [{"family": f"F{i}"} for i in range(MAX_VALUES_PER_RESOURCE // 4)]
    entry = {
        "resource": {"resourceType": "Patient", "name": names},
        "request": {"method": "POST", "url": "Patient"},
    }
    check_json_shape({"resourceType": "Bundle", "type": "transaction", "entry": [entry] * 3})
    collection = {"resourceType": "Bundle", "type": "collection", "entry": [entry] * 3}
    assert status_of(lambda: check_json_shape(collection)) == 413


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Patient", "id": "a" * 65},
        {"resourceType": "Patient", "id": "a_b"},
        {"resourceType": "Patient", "id": 7},
        {"resourceType": "Patient", "contained": [{"resourceType": "Organization", "id": "x y"}]},
        {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "GET", "url": "Patient/" + "a" * 65}}],
        },
        {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "GET", "url": "Patient/p1/_history/" + "9" * 20}}],
        },
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"request": {"method": "DELETE", "url": "Patient/p1", "ifMatch": 'W/"x"'}}],
        },
    ],
)
def test_ids_and_versions_in_a_body_follow_the_fhir_rules(resource: dict[str, Any]):
    assert status_of(lambda: check_json_shape(resource)) == 400


def test_fhir_ids_and_version_numbers():
    assert check_id("A-z.0" * 12 + "abcd") == "A-z.0" * 12 + "abcd"  # 64 characters
    assert status_of(lambda: check_id("a" * 65)) == 400
    assert version_number(str(2**63 - 1)) == 2**63 - 1
    assert version_number(str(2**63)) is None
    assert version_number("٣") is None  # a digit, but not an ASCII one
    check_version_tag('W/"12"')
    assert status_of(lambda: check_version_tag('W/"' + "9" * 30 + '"')) == 400


def test_a_search_over_the_caps_is_a_400_naming_the_cap():
    check_search_size([("name", "x")] * MAX_PARAMETERS)
    with pytest.raises(FhirError) as caught:
        check_search_size([("name", "x")] * (MAX_PARAMETERS + 1))
    assert caught.value.status == 400 and str(MAX_PARAMETERS) in str(caught.value)
    assert status_of(lambda: check_search_size([("name", ",".join(["x"] * 101))])) == 400
    many = [("name", ",".join(["x"] * 100))] * (MAX_VALUES // 100 + 1)
    assert status_of(lambda: check_search_size(many)) == 400
    check_search_size([("_type", ",".join(["Patient"] * 200))])  # a list of types, not terms


@pytest.mark.parametrize(
    "document",
    [
        {"op": "add", "path": "/x", "value": 1},
        ["add"],
        [{"op": "add", "path": "gender", "value": "male"}],
        [{"op": "add", "path": "/a~2b", "value": 1}],
        [{"op": "replace", "path": 5, "value": 1}],
        [{"op": "move", "from": "name", "path": "/x"}],
        [{"op": "copy", "path": "/x"}],
        [{"op": "add", "path": "/x"}],
        [{"op": "explode", "path": "/x"}],
    ],
)
def test_a_json_patch_that_is_not_rfc_6902_is_a_400(document: Any):
    assert status_of(lambda: check_patch_document(document)) == 400


def test_a_valid_json_patch_passes_unchanged():
    ops = [
        {"op": "replace", "path": "/name/0/family", "value": "X"},
        {"op": "move", "from": "/a~1b", "path": "/c~0d"},
        {"op": "remove", "path": ""},
    ]
    assert check_patch_document(ops) == ops
    assert check_patch_document([]) == []


@pytest.mark.parametrize("body", [b"5", b"null", b'"text"', b"true"])
def test_a_body_that_is_a_bare_json_scalar_is_a_400(body: bytes):
    assert status_of(lambda: _parse_and_check(body, resource=True)) == 400
    check_json_shape(None)  # a scalar has no depth and no ids to check


def test_one_long_array_of_scalars_counts_too():
    resource = {"resourceType": "Basic", "extension": [1] * (MAX_VALUES_PER_RESOURCE + 1)}
    assert status_of(lambda: check_json_shape(resource)) == 413
