"""Every code Billable emits is a concept of its own terminology catalog.

Walks the produced corpus (``conftest.judged``): each Coding in a resource Billable wrote
whose system is one the catalog publishes (the billing code sets and Billable's own code
systems) must be a concept there, so that a client can ``$lookup`` whatever it finds on a
claim or an EOB. HL7 and CARIN code systems are the judge's to check (it has them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from terminology import systems
from tests.conformance.conftest import Judged
from tests.conformance.corpus import Corpus

pytestmark = pytest.mark.conformance

WRITTEN_BY_BILLABLE = (
    "Claim",
    "ClaimResponse",
    "ExplanationOfBenefit",
    "Task",
    "Provenance",
    "AuditEvent",
    "CoverageEligibilityResponse",
    "OperationOutcome",
)
# Billing code sets the catalog must cover (NUBC revenue codes are AHA's: not shipped).
BILLING_SYSTEMS = (
    systems.CPT,
    systems.HCPCS,
    systems.ICD10CM,
    systems.ICD10PCS,
    systems.POS,
    systems.CARC,
)


def _codings(node: Any) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        if isinstance(node.get("system"), str) and isinstance(node.get("code"), str):
            yield node["system"], node["code"]
        for value in node.values():
            yield from _codings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _codings(value)


def _catalog(corpus: Corpus) -> dict[str, set[str]]:
    concepts: dict[str, set[str]] = defaultdict(set)
    for cs in corpus.resources("CodeSystem"):
        concepts[cs["url"]].update(c["code"] for c in cs.get("concept") or [])
        full = corpus.concept_codes.get(str(cs["id"]).removesuffix("-full"))
        if full:
            concepts[cs["url"]].update(full)
    return concepts


def _emitted(corpus: Corpus) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for rtype in WRITTEN_BY_BILLABLE:
        for resource in corpus.resources(rtype):
            for system, code in _codings(resource):
                found[system].add(code)
    return found


def test_every_code_billable_emits_is_a_concept_of_its_catalog(judged: Judged) -> None:
    for corpus in judged.corpora:
        catalog = _catalog(corpus)
        missing = {}
        for system, codes in _emitted(corpus).items():
            if system in BILLING_SYSTEMS or system.startswith(systems.BILLABLE_BASE):
                absent = sorted(codes - catalog.get(system, set()))
                if absent:
                    missing[system] = absent
        assert not missing, f"{corpus.label}: codes not in the catalog: {missing}"


def test_the_corpus_emits_the_codes_the_catalog_once_lacked(judged: Judged) -> None:
    """The examples the external check found missing are catalogued on every backend, and
    emitted (the MongoDB leg's smaller record need not have each of them)."""
    emitted: set[str] = set()
    for corpus in judged.corpora:
        catalog = _catalog(corpus)
        assert {"99385", "99283", "25", "57"} <= catalog[systems.CPT]
        assert "D0274" in catalog[systems.HCPCS]
        emitted |= _emitted(corpus)[systems.CPT] | _emitted(corpus)[systems.HCPCS]
    assert emitted >= {"99385", "25", "D0274"}


def test_billable_code_systems_are_published_complete(judged: Judged) -> None:
    for corpus in judged.corpora:
        own = {
            cs["url"]: cs
            for cs in corpus.resources("CodeSystem")
            if cs["url"].startswith(systems.BILLABLE_BASE)
        }
        for name in ("coding-edit", "task-code", "benefit-category", "benefit-type"):
            cs = own[f"{systems.BILLABLE_BASE}/CodeSystem/{name}"]
            assert cs["content"] == "complete" and cs["count"] == len(cs["concept"])


def test_concept_maps_name_each_source_target_pair_once(judged: Judged) -> None:
    for corpus in judged.corpora:
        maps = [cm for cm in corpus.resources("ConceptMap") if cm.get("group")]
        assert maps
        for cm in maps:
            for group in cm["group"]:
                for element in group["element"]:
                    pairs = [(t.get("code"), t["equivalence"]) for t in element.get("target", [])]
                    assert len(pairs) == len(set(pairs)), (cm["id"], element["code"], pairs)
