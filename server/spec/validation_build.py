"""Build Billable's R4 validation data from the official HL7 FHIR R4 (4.0.1) definitions.

Run once when the source changes (``JAR`` is ``hapi-fhir-validation-resources-r4-6.1.0.jar``
from Maven Central, which carries the specification's definition bundles unchanged)::

    mvn dependency:get -Dartifact=ca.uhn.hapi.fhir:hapi-fhir-validation-resources-r4:6.1.0
    python -m server.spec.validation_build \
        ~/.m2/repository/ca/uhn/hapi/fhir/hapi-fhir-validation-resources-r4/6.1.0/\
hapi-fhir-validation-resources-r4-6.1.0.jar

It writes two files into ``server/spec/data/``:

``r4-required-bindings.json``
    The table element path → allowed codes of every *required* binding in
    ``profiles-resources`` and ``profiles-types``, each value set expanded from
    ``valuesets``, ``v3-codesystems`` and ``v2-tables`` (the code systems they include).
    Value sets that cannot be enumerated (MIME types, ISO 4217, UCUM, a LOINC answer list)
    are listed with the grammar check used instead, if any.

``r4-validation.schema.json.gz``
    A JSON Schema (draft 7) generated from the StructureDefinitions: one definition per
    resource, datatype and backbone element (named by its path, ``Claim.item.detail``),
    with the cardinalities (required primitives and choices included, which the official
    ``fhir.schema.json`` leaves out), at most one type per choice element, the primitive
    types' regexes, the FHIR JSON rules (no empty array, object or blank string), the
    codes of the bindings table, and the core invariants that JSON Schema can say (named
    ``inv:<key>``, so that an error names its invariant). Invariants that compare values
    (``per-1``...) or look at the whole resource (``ref-1``, ``dom-3``) are checked in
    ``server/validation``. A nested resource (``contained``, ``Bundle.entry.resource``...)
    is only required to be an object here; ``server/validation`` validates it against its
    own type.
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from server.spec.r4_definitions import load

OUT_DIR = Path(__file__).resolve().parent / "data"
SOURCE = (
    "HL7 FHIR R4 (4.0.1) definitions: profiles-types, profiles-resources, valuesets,"
    " v3-codesystems and v2-tables (XML), as redistributed in the Maven artefact"
    " ca.uhn.hapi.fhir:hapi-fhir-validation-resources-r4:6.1.0"
    " (org/hl7/fhir/r4/model/profile, org/hl7/fhir/r4/model/valueset)"
)
LICENCE = "CC0-1.0 (FHIR specification content, HL7 International: hl7.org/fhir/license.html)"
BUILDER = "server/spec/validation_build.py"
FHIR_VERSION = "4.0.1"

# Value sets whose codes are not in the R4 definition files, and what is checked instead.
MIME_TYPE = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+( *;.*)?$"
EXTERNAL_GRAMMAR = {
    "urn:ietf:bcp:13": ("MIME type (BCP 13)", MIME_TYPE),
    "urn:iso:std:iso:4217": ("ISO 4217 currency code", r"^[A-Z]{3}$"),
    "http://unitsofmeasure.org": ("UCUM unit (not checked)", None),
}
JSON_TYPES = {
    "boolean": "boolean",
    "integer": "integer",
    "positiveInt": "integer",
    "unsignedInt": "integer",
    "decimal": "number",
}
ABSTRACT = {"Element", "BackboneElement", "Resource", "DomainResource"}


class Terminology:
    """The R4 value sets and code systems, enough to expand the required bindings."""

    def __init__(self, value_sets: list[dict[str, Any]], code_systems: list[dict[str, Any]]):
        self.value_sets: dict[str, dict[str, Any]] = {}
        self.code_systems: dict[str, dict[str, Any]] = {}
        for vs in value_sets:
            self.value_sets.setdefault(vs["url"], vs)
        for cs in code_systems:
            self.code_systems.setdefault(cs["url"], cs)

    def system_codes(self, system: str) -> list[str] | None:
        cs = self.code_systems.get(system)
        if cs is None or cs.get("content") not in ("complete", None) or "concept" not in cs:
            return None
        out: list[str] = []

        def walk(concepts: list[dict[str, Any]]) -> None:
            for c in concepts:
                out.append(c["code"])
                walk(c.get("concept", []))

        walk(cs["concept"])
        return out

    def expand(self, url: str) -> dict[str, list[str]] | str:
        """``{system: [codes]}``, or a string saying why the value set cannot be expanded."""
        vs = self.value_sets.get(url)
        if vs is None:
            return f"value set {url} is not part of the R4 definitions"
        compose = vs.get("compose", {})
        result: dict[str, list[str]] = {}
        for inc in compose.get("include", []):
            part = self._include(inc)
            if isinstance(part, str):
                return part
            for system, codes in part.items():
                result.setdefault(system, [])
                result[system].extend(c for c in codes if c not in result[system])
        for exc in compose.get("exclude", []):
            part = self._include(exc)
            if isinstance(part, str):
                return part
            for system, codes in part.items():
                result[system] = [c for c in result.get(system, []) if c not in codes]
        return result

    def _include(self, inc: dict[str, Any]) -> dict[str, list[str]] | str:
        if "filter" in inc:
            return f"filters are not supported: {inc['filter']}"
        result: dict[str, list[str]] = {}
        for nested in inc.get("valueSet", []):
            part = self.expand(nested.split("|")[0])
            if isinstance(part, str):
                return part
            result.update(part)
        system = inc.get("system")
        if system is None:
            return result
        if "concept" in inc:
            result[system] = [c["code"] for c in inc["concept"]]
            return result
        codes = self.system_codes(system)
        if codes is None:
            return f"code system {system} is not enumerable"
        result[system] = codes
        return result


def json_names(element: dict[str, Any], last: str) -> list[tuple[str, str]]:
    """(JSON property name, type code) pairs of one element; a choice has one per type."""
    types = [t["code"] for t in element.get("type", [])]
    if last.endswith("[x]"):
        stem = last[:-3]
        return [(stem + t[0].upper() + t[1:], t) for t in types]
    return [(last, t) for t in types] or [(last, "")]


def is_primitive(type_code: str) -> bool:
    return bool(type_code) and type_code[0].islower()


def bindings_table(
    structure_definitions: list[dict[str, Any]], terminology: Terminology
) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for sd in structure_definitions:
        for el in sd["snapshot"]["element"]:
            binding = el.get("binding")
            if not binding or binding.get("strength") != "required":
                continue
            path = el["path"]
            if path in table:
                continue
            url = binding["valueSet"].split("|")[0]
            entry: dict[str, Any] = {
                "valueSet": url,
                "types": sorted({t["code"] for t in el.get("type", [])}),
            }
            expansion = terminology.expand(url)
            if isinstance(expansion, str):
                vs = terminology.value_sets.get(url, {})
                systems = [i.get("system") for i in vs.get("compose", {}).get("include", [])]
                grammar = [EXTERNAL_GRAMMAR[s] for s in systems if s in EXTERNAL_GRAMMAR]
                if grammar:
                    entry["external"] = grammar[0][0]
                    if grammar[0][1]:
                        entry["pattern"] = grammar[0][1]
                else:
                    entry["unavailable"] = expansion
            else:
                entry["codes"] = {s: c for s, c in sorted(expansion.items())}
            table[path] = entry
    return dict(sorted(table.items()))


def required_of(names: list[str]) -> list[dict[str, Any]]:
    return [{"required": [n]} for n in names]


def invariants() -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Core invariants written as JSON Schema: key → (context definition, human text, schema)."""

    def depends(trigger: str, *needs: str) -> dict[str, Any]:
        return {"if": {"required": [trigger]}, "then": {"anyOf": required_of(list(needs))}}

    def not_both(a: str, b: str) -> dict[str, Any]:
        return {"not": {"required": [a, b]}}

    return {
        "cpt-2": (
            "ContactPoint",
            "A system is required if a value is provided.",
            depends("value", "system", "_system"),
        ),
        "att-1": (
            "Attachment",
            "If the Attachment has data, it SHALL have a contentType",
            depends("data", "contentType", "_contentType"),
        ),
        "sqty-1": ("Quantity", "The comparator is not used on a SimpleQuantity", {}),
        "ces-1": (
            "CoverageEligibilityResponse.insurance.item",
            "SHALL contain a category or a billcode but not both.",
            {"oneOf": required_of(["category", "productOrService"])},
        ),
        "con-4": (
            "Condition",
            "If condition is abated, then clinicalStatus must be either inactive, resolved, or"
            " remission",
            {},
        ),
        "con-5": (
            "Condition",
            "Condition.clinicalStatus SHALL NOT be present if verification Status is"
            " entered-in-error",
            {
                "if": {
                    "required": ["verificationStatus"],
                    "properties": {
                        "verificationStatus": {
                            "required": ["coding"],
                            "properties": {
                                "coding": {
                                    "contains": {
                                        "required": ["system", "code"],
                                        "properties": {
                                            "system": {
                                                "const": "http://terminology.hl7.org/CodeSystem/"
                                                "condition-ver-status"
                                            },
                                            "code": {"const": "entered-in-error"},
                                        },
                                    }
                                }
                            },
                        }
                    },
                },
                "then": {"not": {"required": ["clinicalStatus"]}},
            },
        ),
        "con-1": (
            "Condition.stage",
            "Stage SHALL have summary or assessment",
            {"anyOf": required_of(["summary", "assessment"])},
        ),
        "con-2": (
            "Condition.evidence",
            "evidence SHALL have code or details",
            {"anyOf": required_of(["code", "detail"])},
        ),
        "pat-1": (
            "Patient.contact",
            "SHALL at least contain a contact's details or a reference to an organization",
            {"anyOf": required_of(["name", "telecom", "address", "organization"])},
        ),
        "org-1": (
            "Organization",
            "The organization SHALL at least have a name or an identifier, and possibly more"
            " than one",
            {"anyOf": required_of(["identifier", "name", "_name"])},
        ),
        "ipn-1": (
            "InsurancePlan",
            "The organization SHALL at least have a name or an idendtifier, and possibly more"
            " than one",
            {"anyOf": required_of(["identifier", "name", "_name"])},
        ),
        "sev-1": (
            "AuditEvent.entity",
            "Either a name or a query (NOT both)",
            not_both("name", "query"),
        ),
        "tim-1": (
            "Timing.repeat",
            "if there's a duration, there needs to be duration units",
            depends("duration", "durationUnit", "_durationUnit"),
        ),
        "tim-2": (
            "Timing.repeat",
            "if there's a period, there needs to be period units",
            depends("period", "periodUnit", "_periodUnit"),
        ),
        "tim-4": (
            "Timing.repeat",
            "duration SHALL be a non-negative value",
            {"properties": {"duration": {"minimum": 0}}},
        ),
        "tim-5": (
            "Timing.repeat",
            "period SHALL be a non-negative value",
            {"properties": {"period": {"minimum": 0}}},
        ),
        "tim-6": (
            "Timing.repeat",
            "If there's a periodMax, there must be a period",
            depends("periodMax", "period", "_period"),
        ),
        "tim-7": (
            "Timing.repeat",
            "If there's a durationMax, there must be a duration",
            depends("durationMax", "duration", "_duration"),
        ),
        "tim-8": (
            "Timing.repeat",
            "If there's a countMax, there must be a count",
            depends("countMax", "count", "_count"),
        ),
        "tim-10": (
            "Timing.repeat",
            "If there's a timeOfDay, there cannot be a when, or vice versa",
            not_both("timeOfDay", "when"),
        ),
        "obs-3": (
            "Observation.referenceRange",
            "Must have at least a low or a high or text",
            {"anyOf": required_of(["low", "high", "text", "_text"])},
        ),
        "imm-1": (
            "Immunization.education",
            "One of documentType or reference SHALL be present",
            {"anyOf": required_of(["documentType", "_documentType", "reference", "_reference"])},
        ),
        "grp-1": (
            "Group",
            'Can only have members if group is "actual"',
            {"if": {"required": ["member"]}, "then": {"properties": {"actual": {"const": True}}}},
        ),
        "bdl-8": (
            "Bundle.entry",
            "fullUrl cannot be a version specific reference",
            {"properties": {"fullUrl": {"not": {"pattern": "/_history/"}}}},
        ),
    }


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/definitions/{name}"}


class SchemaBuilder:
    """Generates the JSON Schema from the StructureDefinitions and the bindings table."""

    def __init__(self, sds: list[dict[str, Any]], table: dict[str, Any]) -> None:
        self.sds = sds
        self.table = table
        self.defs: dict[str, Any] = {}
        self.notes: list[str] = []
        self.invariant_schemas = invariants()

    def build(self) -> dict[str, Any]:
        self._nested_resources()
        for sd in self.sds:
            if sd["kind"] == "primitive-type":
                self._primitive(sd)
        for sd in self.sds:
            if sd["kind"] != "primitive-type" and not (
                sd["kind"] == "resource" and sd["type"] in ABSTRACT
            ):
                self._structure(sd)
        self._invariants()
        return {"$schema": "http://json-schema.org/draft-07/schema#", "definitions": self.defs}

    def _nested_resources(self) -> None:
        # Checked one by one against their own type by server/validation: a oneOf over
        # 146 resource schemas would be slow and its errors would say nothing.
        self.defs["Resource"] = {"type": "object", "required": ["resourceType"]}
        self.defs["json:nonblank"] = {"pattern": "\\S"}

    def _primitive(self, sd: dict[str, Any]) -> None:
        name = sd["type"]
        value = next(e for e in sd["snapshot"]["element"] if e["path"] == f"{name}.value")
        regex = next((t.get("regex") for t in value["type"] if t.get("regex")), None)
        json_type = JSON_TYPES.get(name, "string")
        schema: dict[str, Any] = {"type": json_type}
        if json_type == "string":
            if regex and name != "xhtml":
                schema["pattern"] = f"^{regex}$"
            # FHIR JSON has no empty or blank strings; add the check only where the
            # type's own regex lets them through (a regex costs; most types need none).
            if not regex or name == "xhtml" or re.fullmatch(regex, " "):
                schema["allOf"] = [ref("json:nonblank")]
            elif re.fullmatch(regex, ""):
                schema["minLength"] = 1
        elif name == "positiveInt":
            schema["minimum"] = 1
        elif name == "unsignedInt":
            schema["minimum"] = 0
        if name in ("integer", "positiveInt", "unsignedInt"):
            schema["maximum"] = 2147483647
            schema.setdefault("minimum", -2147483648)
        self.defs[name] = schema

    def _structure(self, sd: dict[str, Any]) -> None:
        elements = sd["snapshot"]["element"]
        children: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for el in elements[1:]:
            children[el["path"].rpartition(".")[0]].append(el)
        for path, kids in children.items():
            self._definition(sd, path, kids, has_children=children)

    def _definition(
        self,
        sd: dict[str, Any],
        path: str,
        kids: list[dict[str, Any]],
        has_children: dict[str, list[dict[str, Any]]],
    ) -> None:
        props: dict[str, Any] = {}
        required: list[str] = []
        checks: list[str] = []
        if path == sd["type"] and sd["kind"] == "resource":
            props["resourceType"] = {"const": sd["type"]}
            required.append("resourceType")
        for el in kids:
            last = el["path"].rsplit(".", 1)[-1]
            names = json_names(el, last)
            many = el["max"] != "1"
            for name, type_code in names:
                item = self._item(el, name, type_code, el["path"] in has_children)
                if is_primitive(type_code):
                    props[name] = self._maybe_many(item, many, nullable=True)
                    props["_" + name] = self._maybe_many(ref("Element"), many, nullable=True)
                else:
                    props[name] = self._maybe_many(item, many, nullable=False)
            choice = last.endswith("[x]")
            stem = last.removesuffix("[x]")
            present = [n for n, _ in names] + [f"_{n}" for n, t in names if is_primitive(t)]
            if choice and len(names) > 1:
                key = f"choice:{path}.{stem}"
                self.defs[key] = {
                    "oneOf": [
                        *required_of([n for n, _ in names]),
                        {"not": {"anyOf": required_of(present)}},
                    ]
                }
                checks.append(key)
            if el["min"] >= 1:
                if choice or any(is_primitive(t) for _, t in names):
                    # "(x)": brackets are not allowed in a URI fragment.
                    key = f"min:{path}.{last.replace('[x]', '(x)')}"
                    self.defs[key] = {"anyOf": required_of(present)}
                    checks.append(key)
                else:
                    required.append(names[0][0])
        schema: dict[str, Any] = {
            "type": "object",
            "properties": props,
            "additionalProperties": False,
            "minProperties": 1,
        }
        if required:
            schema["required"] = required
        if checks:
            schema["allOf"] = [ref(k) for k in checks]
        self.defs[path] = schema

    @staticmethod
    def _maybe_many(item: dict[str, Any], many: bool, nullable: bool) -> dict[str, Any]:
        if not many:
            return item
        if nullable:
            # ``[null, "x"]``: legal where the parallel ``_name`` array carries an extension.
            item = {"anyOf": [{"type": "null"}, item]}
        return {"type": "array", "minItems": 1, "items": item}

    def _item(self, el: dict[str, Any], name: str, type_code: str, backbone: bool) -> Any:
        if "contentReference" in el:
            return ref(el["contentReference"].lstrip("#"))
        if backbone:
            return ref(el["path"])
        if type_code == "Resource":
            return ref("Resource")
        binding = self.table.get(el["path"])
        if binding is not None and type_code == "code":
            if "codes" in binding:
                codes = sorted({c for cs in binding["codes"].values() for c in cs})
                return {"type": "string", "enum": codes}
            if "pattern" in binding:
                return {"allOf": [ref("code")], "pattern": binding["pattern"]}
            self.notes.append(f"binding not enforced: {el['path']} ({binding.get('unavailable')})")
        elif binding is not None and type_code in ("CodeableConcept", "Coding"):
            if "codes" in binding:
                key = f"bind:{el['path']}"
                self.defs[key] = self._coded(type_code, binding["codes"])
                return {"allOf": [ref(type_code), ref(key)]}
            self.notes.append(f"binding not enforced: {el['path']} ({binding.get('external')})")
        if type_code == "Quantity" and any(
            p.endswith("/SimpleQuantity") for t in el["type"] for p in t.get("profile", [])
        ):
            return {"allOf": [ref("Quantity"), ref("inv:sqty-1")]}
        return ref(type_code)

    @staticmethod
    def _coded(type_code: str, codes: dict[str, list[str]]) -> dict[str, Any]:
        coding = {
            "required": ["system", "code"],
            "anyOf": [
                {"properties": {"system": {"const": s}, "code": {"enum": sorted(c)}}}
                for s, c in codes.items()
            ],
        }
        if type_code == "Coding":
            return coding
        return {"required": ["coding"], "properties": {"coding": {"contains": coding}}}

    def _add(self, d: str, key: str) -> None:
        self.defs[d].setdefault("allOf", []).append(ref(key))

    def _invariants(self) -> None:
        for key, (context, _human, schema) in self.invariant_schemas.items():
            if key == "sqty-1":
                self.defs["inv:sqty-1"] = {"not": {"required": ["comparator"]}}
                continue
            if key == "con-4":
                schema = self._con4()
            if context not in self.defs:
                self.notes.append(f"no definition for invariant {key} ({context})")
                continue
            self.defs[f"inv:{key}"] = schema
            self._add(context, f"inv:{key}")
        # qty-3 applies to Quantity and every type derived from it.
        self.defs["inv:qty-3"] = {
            "if": {"required": ["code"]},
            "then": {"anyOf": required_of(["system", "_system"])},
        }
        for d in ("Quantity", "Age", "Count", "Distance", "Duration"):
            self._add(d, "inv:qty-3")
        values = self._variants("Extension", "value")
        self.defs["inv:ext-1"] = {
            "oneOf": [
                {"required": ["extension"]},
                {"anyOf": required_of(values + ["_" + v for v in values])},
            ]
        }
        self._add("Extension", "inv:ext-1")
        self.defs["inv:obs-6"] = {
            "if": {"required": ["dataAbsentReason"]},
            "then": {"not": {"anyOf": required_of(self._variants("Observation", "value"))}},
        }
        self._add("Observation", "inv:obs-6")
        # Value comparisons JSON Schema cannot make: the schema selects the elements where
        # the rule can fail, and server/validation's keyword ``x-<key>`` decides.
        for key, context, needs, pattern in (
            ("per-1", "Period", ["start", "end"], None),
            ("rng-2", "Range", ["low", "high"], None),
            ("ref-1", "Reference", ["reference"], "^#."),
        ):
            condition: dict[str, Any] = {"required": needs}
            if pattern:
                condition["properties"] = {needs[0]: {"pattern": pattern}}
            self.defs[f"inv:{key}"] = {"if": condition, "then": {f"x-{key}": True}}
            self._add(context, f"inv:{key}")

    def _variants(self, d: str, stem: str) -> list[str]:
        props = self.defs[d]["properties"]
        return [n for n in props if n.startswith(stem) and n[len(stem) : len(stem) + 1].isupper()]

    def _con4(self) -> dict[str, Any]:
        abatements = self._variants("Condition", "abatement")
        abated = {"anyOf": required_of(abatements + ["_" + a for a in abatements])}
        system = "http://terminology.hl7.org/CodeSystem/condition-clinical"
        resolved = {
            "required": ["system", "code"],
            "properties": {
                "system": {"const": system},
                "code": {"enum": ["inactive", "remission", "resolved"]},
            },
        }
        ok = {
            "required": ["clinicalStatus"],
            "properties": {
                "clinicalStatus": {
                    "required": ["coding"],
                    "properties": {"coding": {"contains": resolved}},
                }
            },
        }
        return {"if": abated, "then": ok}


def human_texts(sds: list[dict[str, Any]]) -> dict[str, str]:
    texts: dict[str, str] = {}
    for sd in sds:
        for el in sd["snapshot"]["element"]:
            for c in el.get("constraint", []):
                texts.setdefault(c["key"], c["human"])
    return texts


# Checked in Python (server/validation/invariants.py): they compare values or look at
# the whole resource.
PYTHON_INVARIANTS = (
    "ref-1",
    "per-1",
    "rng-2",
    "obs-7",
    "inv-1",
    "dom-2",
    "dom-3",
    "dom-4",
    "dom-5",
)


def build(jar: Path) -> list[Path]:
    definitions = load(jar)
    sds = [
        sd
        for sd in definitions["StructureDefinition"]
        if sd["version"] == FHIR_VERSION
        and sd["derivation"] != "constraint"
        and sd["kind"] in ("primitive-type", "complex-type", "resource")
        and sd["url"] == f"http://hl7.org/fhir/StructureDefinition/{sd['type']}"
    ]
    terminology = Terminology(definitions["ValueSet"], definitions["CodeSystem"])
    table = bindings_table([sd for sd in sds if sd["kind"] != "primitive-type"], terminology)
    builder = SchemaBuilder(sds, table)
    schema = builder.build()
    texts = human_texts(definitions["StructureDefinition"])
    keys = [*builder.invariant_schemas, "qty-3", "ext-1", "obs-6", *PYTHON_INVARIANTS]
    schema["x-invariants"] = {k: texts[k] for k in sorted(keys)}
    schema["x-resourceTypes"] = sorted(
        sd["type"] for sd in sds if sd["kind"] == "resource" and not sd["abstract"]
    )
    meta = {"source": SOURCE, "licence": LICENCE, "fhirVersion": FHIR_VERSION, "builtBy": BUILDER}
    schema.update({f"x-{k}": v for k, v in meta.items()})
    out_schema = OUT_DIR / "r4-validation.schema.json.gz"
    raw = json.dumps(schema, separators=(",", ":"), sort_keys=True).encode()
    out_schema.write_bytes(gzip.compress(raw, mtime=0))
    out_table = OUT_DIR / "r4-required-bindings.json"
    doc = {**meta, "notes": sorted(set(builder.notes)), "bindings": table}
    out_table.write_text(json.dumps(doc, indent=1) + "\n")
    return [out_schema, out_table]


if __name__ == "__main__":
    for path in build(Path(sys.argv[1]).expanduser()):
        print(path, path.stat().st_size)
