"""The shortcuts of index extraction never change what is extracted.

``extract_index_values`` skips the parameters whose expressions cannot reach any element
of the resource (``fhirpath.root_keys``), caches the word-suffix rows of ``:text`` and
date ranges, and normalises ASCII strings without a per-character walk. Each test pins
one shortcut against the plain computation it replaces, on real-shaped data.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

import orjson
import pytest

from server.search import extract
from server.search.extract import extract_index_values
from server.search.values import normalise_string
from server.storage.port import SearchIndex

SYNTHEA = Path(__file__).parent.parent / "fixtures" / "synthea"
LAST_UPDATED = "2026-03-04T05:06:07.890Z"


def synthea_resources() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(SYNTHEA.glob("*.json")):
        bundle = orjson.loads(path.read_bytes())
        out.extend(e["resource"] for e in bundle.get("entry", []) if "resource" in e)
    return out


def every_parameter(resource: dict[str, Any], rtype: str) -> list[Any]:
    """The reference: every indexed parameter of the type, none skipped (``_lastUpdated``
    is indexed apart, from the given instant or ``meta``)."""
    return [run for run in extract._plan(rtype).runs if run[0] != "_lastUpdated"]


def as_sets(index: SearchIndex) -> dict[str, set[Any]]:
    names = ("tokens", "strings", "references", "dates", "numbers", "quantities", "uris")
    out = {name: set(getattr(index, name)) for name in names}
    out["composites"] = set(index.composites)
    return out


def test_skipping_unreachable_parameters_extracts_exactly_what_evaluating_all_does(
    monkeypatch: pytest.MonkeyPatch,
):
    resources = synthea_resources()
    assert len({r["resourceType"] for r in resources}) >= 15
    fast = [extract_index_values(r, LAST_UPDATED) for r in resources]
    monkeypatch.setattr(extract, "_params_for", every_parameter)
    for resource, got in zip(resources, fast, strict=True):
        full = extract_index_values(resource, LAST_UPDATED)
        assert as_sets(got) == as_sets(full), f"{resource['resourceType']}/{resource.get('id')}"


def test_choice_elements_and_composites_are_found_by_the_key_they_are_stored_under(
    monkeypatch: pytest.MonkeyPatch,
):
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
        "valueQuantity": {"value": 120, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
        "effectivePeriod": {"start": "2026-01-02", "end": "2026-01-03"},
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                "valueCodeableConcept": {"coding": [{"system": "urn:x", "code": "high"}]},
            }
        ],
    }
    fast = extract_index_values(observation, LAST_UPDATED)
    assert any(row[0] == "value-quantity" for row in fast.quantities)
    assert any(row[0] == "date" for row in fast.dates)
    assert {c[0] for c in fast.composites} >= {
        "code-value-quantity",
        "component-code-value-concept",
        "combo-code-value-concept",
    }
    monkeypatch.setattr(extract, "_params_for", every_parameter)
    assert as_sets(fast) == as_sets(extract_index_values(observation, LAST_UPDATED))


def test_last_updated_is_indexed_even_without_meta():
    index = extract_index_values({"resourceType": "Basic"}, LAST_UPDATED)
    assert [row[0] for row in index.dates] == ["_lastUpdated"]


@pytest.mark.parametrize(
    "text",
    ["Acute Bronchitis (disorder)", "  Two   spaces ", "ÉLODIE Müller", "Straße", "ﬁne ligature"],
)
def test_ascii_fast_path_normalises_like_the_unicode_rules(text: str):
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    assert normalise_string(text) == " ".join(stripped.casefold().split())


def test_text_rows_are_one_per_word_suffix_and_the_cache_returns_the_same_rows():
    first = extract_index_values(
        {"resourceType": "Condition", "code": {"text": "Acute viral Bronchitis"}}, LAST_UPDATED
    )
    again = extract_index_values(
        {"resourceType": "Condition", "code": {"text": "Acute viral Bronchitis"}}, LAST_UPDATED
    )
    rows = [row for row in first.strings if row[0] == "code:text"]
    assert first.strings[0] is again.strings[0]  # one row object, shared
    assert rows == [
        ("code:text", "acute viral bronchitis", "Acute viral Bronchitis"),
        ("code:text", "viral bronchitis", "viral Bronchitis"),
        ("code:text", "bronchitis", "Bronchitis"),
    ]
    assert first == again
