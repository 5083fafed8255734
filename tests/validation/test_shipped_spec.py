"""The shipped validation data says where it comes from and covers what it claims."""

from __future__ import annotations

from server.spec.resources import resource_types
from server.validation.structure import required_bindings, schema


def test_schema_and_bindings_table_name_their_source_version_and_licence():
    meta = schema()
    assert meta["x-fhirVersion"] == "4.0.1"
    assert "hapi-fhir-validation-resources-r4" in meta["x-source"]
    assert meta["x-licence"].startswith("CC0")
    assert meta["x-builtBy"] == "server/spec/validation_build.py"


def test_the_schema_knows_exactly_the_146_r4_resource_types():
    assert set(schema()["x-resourceTypes"]) == set(resource_types())
    assert len(resource_types()) == 146


def test_every_enumerable_required_code_binding_is_an_enum_of_the_schema():
    definitions = schema()["definitions"]
    checked = 0
    for path, binding in required_bindings().items():
        if "codes" not in binding:
            continue
        parent, _, name = path.rpartition(".")
        if binding["types"] == ["code"]:
            prop = definitions[parent]["properties"][name]
            item = prop.get("items", prop)
            item = item["anyOf"][1] if "anyOf" in item else item
            codes = {c for cs in binding["codes"].values() for c in cs}
            assert set(item["enum"]) == codes, path
        else:
            assert f"bind:{path}" in definitions, path
        checked += 1
    assert checked > 340
