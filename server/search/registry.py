"""The search parameter registry, generated from the official R4 SearchParameter set.

The data file ``server/spec/data/r4-search-parameters.json.gz`` is built by
``server.search.registry_build`` from HL7's definitions (its ``source`` and ``licence``
are recorded inside it). Nothing here is a hand-written list of parameters.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from server.search.fhirpath import Evaluator, compile_expression, compile_relative, root_of
from server.search.fhirpath import split_top_level as _split
from server.spec.resources import resource_types

PARAM_TYPES = ("number", "date", "string", "token", "reference", "composite", "quantity", "uri")


@dataclass(frozen=True, slots=True)
class Component:
    param: SearchParam
    evaluate: Callable[[Any, Any], list[Any]]


@dataclass(frozen=True, slots=True)
class SearchParam:
    """One search parameter as it applies to one resource type."""

    code: str
    type: str
    resource_type: str
    expression: str | None
    url: str
    targets: tuple[str, ...] = ()
    evaluate: Evaluator | None = field(default=None, compare=False, repr=False)
    components: tuple[Component, ...] = field(default=(), compare=False, repr=False)

    @property
    def indexed(self) -> bool:
        return self.evaluate is not None and self.type in PARAM_TYPES


@dataclass(frozen=True, slots=True)
class Registry:
    by_type: dict[str, dict[str, SearchParam]]
    compartments: dict[str, dict[str, tuple[str, ...]]]
    source: str
    licence: str

    def params(self, resource_type: str) -> dict[str, SearchParam]:
        return self.by_type.get(resource_type, {})

    def get(self, resource_type: str, code: str) -> SearchParam | None:
        return self.by_type.get(resource_type, {}).get(code)

    def compartment_params(self, compartment: str, resource_type: str) -> tuple[str, ...]:
        return self.compartments.get(compartment, {}).get(resource_type, ())


def _raw() -> dict[str, Any]:
    data = resources.files("server.spec").joinpath("data/r4-search-parameters.json.gz")
    loaded: dict[str, Any] = json.loads(gzip.decompress(data.read_bytes()))
    return loaded


def _expression_for(expression: str | None, resource_type: str) -> str | None:
    if not expression:
        return None
    parts = [
        p for p in _split(expression) if root_of(p) in (resource_type, "Resource", "DomainResource")
    ]
    return " | ".join(parts) if parts else None


@cache
def registry() -> Registry:
    raw = _raw()
    definitions: list[dict[str, Any]] = raw["searchParameters"]
    by_url = {d["url"]: d for d in definitions}
    all_types = sorted(resource_types())
    by_type: dict[str, dict[str, SearchParam]] = {t: {} for t in all_types}

    def make(d: dict[str, Any], rtype: str) -> SearchParam | None:
        expression = _expression_for(d.get("expression"), rtype)
        evaluate = compile_expression(expression, rtype) if expression else None
        components: list[Component] = []
        for comp in d.get("component", ()):
            target = by_url.get(comp["definition"])
            if target is None:
                continue
            sub = SearchParam(
                code=target["code"],
                type=target["type"],
                resource_type=rtype,
                expression=comp["expression"],
                url=target["url"],
                targets=tuple(target.get("target", ())),
            )
            components.append(Component(sub, compile_relative(comp["expression"])))
        if d["type"] == "composite" and len(components) != len(d.get("component", ())):
            return None
        return SearchParam(
            code=d["code"],
            type=d["type"],
            resource_type=rtype,
            expression=expression,
            url=d["url"],
            targets=tuple(d.get("target", ())),
            evaluate=evaluate,
            components=tuple(components),
        )

    for d in definitions:
        bases = d["base"]
        types = all_types if ("Resource" in bases or "DomainResource" in bases) else bases
        for rtype in types:
            if rtype not in by_type:
                continue
            if d["code"] in by_type[rtype] and d["url"].endswith(f"/{rtype}-{d['code']}") is False:
                continue  # a type-specific definition wins over a shared one
            param = make(d, rtype)
            if param is not None:
                by_type[rtype][d["code"]] = param
    compartments = {
        name: {t: tuple(ps) for t, ps in comp["resource"].items()}
        for name, comp in raw["compartments"].items()
    }
    return Registry(by_type, compartments, raw["source"], raw["licence"])


def common_params(types: list[str]) -> dict[str, SearchParam]:
    """Parameters every one of ``types`` defines (system-level search); no types: all types."""
    reg = registry()
    if not types:
        return {
            code: p
            for code, p in reg.params("Patient").items()
            if "/Resource-" in p.url or "/DomainResource-" in p.url
        }
    first, *rest = types
    common: dict[str, SearchParam] = {}
    for code, p in reg.params(first).items():
        others = [reg.get(t, code) for t in rest]
        if all(o is not None and o.type == p.type for o in others):
            common[code] = p
    return common
