"""A missing element is looked for under its choice names only where R4 has such names.

``fhirpath._field`` finds ``Observation.effective`` under ``effectiveDateTime``,
``effectivePeriod``...: when the plain name is missing it scans the node's keys for the
name plus a type suffix. ``CHOICE_PREFIXES`` lists every name for which some R4 element
is the name plus a suffix; any other name skips the scan. These tests hold the list to
the shipped R4 schema and show the scan still runs where it must.
"""

from __future__ import annotations

from server.search.fhirpath import CHOICE_PREFIXES, CHOICE_SUFFIXES, compile_expression
from server.validation.structure import schema


def schema_choice_prefixes() -> set[str]:
    names: set[str] = set()
    for definition in schema()["definitions"].values():
        if not isinstance(definition, dict):
            continue
        for key in definition.get("properties") or ():
            if key.startswith("_"):
                continue  # primitive extensions: no search expression names them
            for cut in range(1, len(key)):
                if key[cut:] in CHOICE_SUFFIXES:
                    names.add(key[:cut])
    return names


def test_choice_prefixes_are_exactly_the_names_the_r4_schema_extends_by_a_type_suffix():
    assert set(CHOICE_PREFIXES) == schema_choice_prefixes()


def test_the_schema_refuses_keys_it_does_not_define_so_no_other_name_can_be_extended():
    for name, definition in schema()["definitions"].items():
        if isinstance(definition, dict) and definition.get("properties"):
            # bind:/inv: definitions only add a rule to a type defined elsewhere
            if not name.startswith(("bind:", "inv:")):
                assert definition.get("additionalProperties") is False, name


def test_a_choice_element_is_found_under_its_typed_key_and_a_plain_one_by_its_name():
    effective = compile_expression("Observation.effective", "Observation")
    status = compile_expression("Observation.status", "Observation")
    observation = {"resourceType": "Observation", "status": "final", "effectivePeriod": {}}
    assert effective(observation) == [{}]
    assert status(observation) == ["final"]
    assert "effective" in CHOICE_PREFIXES and "status" in CHOICE_PREFIXES  # statusDate
    assert "subject" in CHOICE_PREFIXES and "encounter" not in CHOICE_PREFIXES
