"""The FHIR R4 (4.0.1) resource types, from the shipped copy of the official definitions."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

FHIR_VERSION = "4.0.1"


@cache
def resource_types() -> frozenset[str]:
    """Every concrete R4 resource type (146 of them), e.g. ``Claim``, ``Patient``."""
    raw = resources.files("server.spec").joinpath("data/r4-resource-types.json").read_bytes()
    return frozenset(json.loads(raw)["resourceTypes"])


def is_resource_type(name: str) -> bool:
    return name in resource_types()
