"""Read the official FHIR R4 (4.0.1) definition files, as the build scripts need them.

The source is the XML edition of the specification's definition bundles that HAPI FHIR
redistributes unchanged in ``ca.uhn.hapi.fhir:hapi-fhir-validation-resources-r4``
(``org/hl7/fhir/r4/model/profile/*.xml`` and ``.../valueset/*.xml``). Only the fields the
validation build uses are read; the result looks like the JSON edition.
Build-time only: nothing here runs in the server.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

NS = "{http://hl7.org/fhir}"
PROFILES = "org/hl7/fhir/r4/model/profile/"
VALUESETS = "org/hl7/fhir/r4/model/valueset/"
FHIRPATH_TYPES = "http://hl7.org/fhirpath/System."


def _value(node: ET.Element, name: str) -> str | None:
    child = node.find(NS + name)
    return child.get("value") if child is not None else None


def _values(node: ET.Element, name: str) -> list[str]:
    return [str(c.get("value")) for c in node.findall(NS + name)]


def read_bundle(jar: zipfile.ZipFile, member: str) -> Iterator[ET.Element]:
    root = ET.fromstring(jar.read(member))
    for entry in root.findall(NS + "entry"):
        resource = entry.find(NS + "resource")
        if resource is not None and len(resource):
            yield resource[0]


def _type(node: ET.Element) -> dict[str, Any]:
    code = str(_value(node, "code"))
    fhir_type = regex = None
    for ext in node.findall(NS + "extension"):
        url = ext.get("url", "")
        if url.endswith("/structuredefinition-fhir-type"):
            fhir_type = _value(ext, "valueUrl")
        elif url.endswith("/regex"):
            regex = _value(ext, "valueString")
    if code.startswith(FHIRPATH_TYPES):
        # ``Element.id`` and friends: a FHIRPath system type standing for a FHIR primitive.
        code = fhir_type or code.removeprefix(FHIRPATH_TYPES).lower()
    out: dict[str, Any] = {"code": code}
    profiles = _values(node, "profile")
    if profiles:
        out["profile"] = profiles
    if regex:
        out["regex"] = regex
    return out


def _element(node: ET.Element) -> dict[str, Any]:
    el: dict[str, Any] = {
        "path": _value(node, "path"),
        "min": int(_value(node, "min") or 0),
        "max": _value(node, "max") or "*",
        "type": [_type(t) for t in node.findall(NS + "type")],
    }
    ref = _value(node, "contentReference")
    if ref:
        el["contentReference"] = ref
    binding = node.find(NS + "binding")
    if binding is not None:
        el["binding"] = {
            "strength": _value(binding, "strength"),
            "valueSet": _value(binding, "valueSet"),
        }
    constraints = []
    for c in node.findall(NS + "constraint"):
        constraints.append(
            {
                "key": _value(c, "key"),
                "severity": _value(c, "severity"),
                "human": _value(c, "human"),
                "expression": _value(c, "expression"),
            }
        )
    if constraints:
        el["constraint"] = constraints
    return el


def structure_definition(node: ET.Element) -> dict[str, Any]:
    snapshot = node.find(NS + "snapshot")
    return {
        "resourceType": "StructureDefinition",
        "url": _value(node, "url"),
        "version": _value(node, "version"),
        "name": _value(node, "name"),
        "type": _value(node, "type"),
        "kind": _value(node, "kind"),
        "abstract": _value(node, "abstract") == "true",
        "derivation": _value(node, "derivation"),
        "snapshot": {
            "element": [
                _element(e)
                for e in (snapshot if snapshot is not None else [])
                if e.tag == NS + "element"
            ]
        },
    }


def _include(node: ET.Element) -> dict[str, Any]:
    inc: dict[str, Any] = {}
    system = _value(node, "system")
    if system:
        inc["system"] = system
    concepts = [{"code": _value(c, "code")} for c in node.findall(NS + "concept")]
    if concepts:
        inc["concept"] = concepts
    value_sets = _values(node, "valueSet")
    if value_sets:
        inc["valueSet"] = value_sets
    filters = [
        {"property": _value(f, "property"), "op": _value(f, "op"), "value": _value(f, "value")}
        for f in node.findall(NS + "filter")
    ]
    if filters:
        inc["filter"] = filters
    return inc


def value_set(node: ET.Element) -> dict[str, Any]:
    compose = node.find(NS + "compose")
    out: dict[str, Any] = {"resourceType": "ValueSet", "url": _value(node, "url")}
    if compose is not None:
        out["compose"] = {
            "include": [_include(i) for i in compose.findall(NS + "include")],
            "exclude": [_include(i) for i in compose.findall(NS + "exclude")],
        }
    return out


def _concepts(node: ET.Element) -> list[dict[str, Any]]:
    return [
        {"code": _value(c, "code"), "concept": _concepts(c)} for c in node.findall(NS + "concept")
    ]


def code_system(node: ET.Element) -> dict[str, Any]:
    return {
        "resourceType": "CodeSystem",
        "url": _value(node, "url"),
        "content": _value(node, "content"),
        "concept": _concepts(node),
    }


def load(jar_path: Path) -> dict[str, list[dict[str, Any]]]:
    """``{"StructureDefinition": [...], "ValueSet": [...], "CodeSystem": [...]}``."""
    out: dict[str, list[dict[str, Any]]] = {
        "StructureDefinition": [],
        "ValueSet": [],
        "CodeSystem": [],
    }
    with zipfile.ZipFile(jar_path) as jar:
        for name in ("profiles-types.xml", "profiles-resources.xml"):
            for node in read_bundle(jar, PROFILES + name):
                if node.tag == NS + "StructureDefinition":
                    out["StructureDefinition"].append(structure_definition(node))
        for name in ("valuesets.xml", "v3-codesystems.xml", "v2-tables.xml"):
            for node in read_bundle(jar, VALUESETS + name):
                if node.tag == NS + "ValueSet":
                    out["ValueSet"].append(value_set(node))
                elif node.tag == NS + "CodeSystem":
                    out["CodeSystem"].append(code_system(node))
    return out
