"""The independent judge: HAPI FHIR's validator over everything Billable produces.

The corpus (``tests.conformance.corpus``) is made through the API from the Synthea sample
on both storage backends, then one JVM run of the judge (``validator/``, HAPI FHIR
validation 8.8.0 with the R4 4.0.1 core definitions and the shipped CARIN BB STU2
folder) validates all of it: every ExplanationOfBenefit against the CARIN profile of its
kind. Any error fails; warnings are allowed only where the validator has no copy of a
code system (SNOMED CT, CPT, ICD-10-CM, HCPCS, X12, NUBC).

``make conformance`` builds the judge (Maven, downloads cached under
``~/.cache/billable/m2``) and runs this module; ``make test`` includes that stage.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conformance.corpus import EOB_PROFILES, Corpus, build_corpus, manifest
from tests.support.ferretdb import with_database

pytestmark = pytest.mark.conformance

HERE = Path(__file__).resolve().parent
JUDGE = HERE / "validator" / "target"
IG = HERE / "ig" / "carin-bb-2.0.0"
# Every kind of resource Billable writes or answers with, and so must be in the corpus.
PRODUCED = (
    "Claim",
    "ClaimResponse",
    "ExplanationOfBenefit",
    "Task",
    "Provenance",
    "AuditEvent",
    "CoverageEligibilityResponse",
    "CapabilityStatement",
    "Bundle",
    "OperationOutcome",
    "CodeSystem",
    "ValueSet",
    "ConceptMap",
)


@dataclass
class Judged:
    corpora: list[Corpus]
    report: dict[str, Any]
    output: str


def _judge_classpath() -> str:
    classes, lib = JUDGE / "classes", JUDGE / "lib"
    if not (classes / "org" / "billable" / "conformance" / "Judge.class").exists():
        message = "the judge is not built: run `make conformance` (Java 17 + Maven)"
        if os.environ.get("BILLABLE_REQUIRE_CONFORMANCE") == "1":
            pytest.fail(f"BILLABLE_REQUIRE_CONFORMANCE=1 but {message}", pytrace=False)
        pytest.skip(message)
    return f"{classes}{os.pathsep}{lib}{os.sep}*"


def _mongo_url(request: pytest.FixtureRequest) -> str | None:
    """A database of its own on the session's MongoDB server, or None without one (the
    session fixture fails instead when BILLABLE_REQUIRE_MONGO=1)."""
    try:
        uri = str(request.getfixturevalue("mongo_uri"))
    except pytest.skip.Exception:
        return None
    return with_database(uri, f"conformance_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="module")
def judged(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Judged:
    classpath = _judge_classpath()
    java = shutil.which("java")
    assert java, "java is not on PATH"
    root = tmp_path_factory.mktemp("corpus")
    urls = {"sqlite": f"sqlite:///{root / 'billable.db'}"}
    mongo = _mongo_url(request)
    if mongo is not None:
        urls["mongo"] = mongo
    corpora = [build_corpus(url, root, label) for label, url in urls.items()]
    manifest_path = root / "manifest.json"
    manifest_path.write_bytes(orjson.dumps(manifest(corpora)))
    report_path = root / "report.json"
    run = subprocess.run(
        [
            java,
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp",
            classpath,
            "org.billable.conformance.Judge",
            str(IG),
            str(manifest_path),
            str(report_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode in (0, 1), f"the judge could not run:\n{run.stdout}\n{run.stderr}"
    report = orjson.loads(report_path.read_bytes())
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    print(f"\n{summary}")
    return Judged(corpora, report, summary)


@pytest.fixture
def corpora(judged: Judged) -> Iterator[Corpus]:
    yield from judged.corpora


def _errors(report: dict[str, Any]) -> list[str]:
    return [
        f"{f['path']}: {i['location']}: {i['message']}"
        for f in report["files"]
        for i in f["issues"]
        if i["severity"] == "error"
    ]


def test_every_resource_billable_produces_passes_the_hapi_validator(judged: Judged) -> None:
    errors = _errors(judged.report)
    shown = "\n".join(errors[:60])
    assert not errors, f"{len(errors)} errors from the HAPI FHIR validator:\n{shown}"


def test_the_only_warnings_tolerated_are_unknown_code_systems_or_best_practice(
    judged: Judged,
) -> None:
    """Warnings other than "this code system is unknown to me" are problems too, except
    dom-6 (a resource should have narrative), a best-practice note Billable declines:
    its resources are data for machines, and a generated narrative would only repeat it."""
    other = Counter(
        i["message"]
        for f in judged.report["files"]
        for i in f["issues"]
        if i["severity"] == "warning" and not i["unknownCodeSystem"] and "dom-6" not in i["message"]
    )
    assert not other, "\n".join(f"{n} x {m}" for m, n in other.most_common(40))


def test_the_corpus_has_every_kind_of_resource_on_every_backend(judged: Judged) -> None:
    assert {c.label for c in judged.corpora} >= {"sqlite"}
    for corpus in judged.corpora:
        missing = [rtype for rtype in PRODUCED if corpus.count(rtype) == 0]
        assert not missing, f"{corpus.label}: nothing of {missing} in the corpus"


def test_every_kind_of_eob_is_judged_against_its_carin_profile(judged: Judged) -> None:
    judged_files = {f["path"] for f in judged.report["files"]}
    for corpus in judged.corpora:
        assert set(corpus.eob_kinds) == set(EOB_PROFILES), corpus.eob_kinds
        for rel, profiles in corpus.files:
            if rel.split("/")[1] == "ExplanationOfBenefit":
                assert len(profiles) == 1 and profiles[0] in EOB_PROFILES.values()
                assert rel in judged_files
        for eob in corpus.resources("ExplanationOfBenefit"):
            assert eob["meta"]["profile"][0].endswith("|2.0.0"), eob["meta"]


def test_large_catalog_code_systems_have_unique_codes(judged: Judged) -> None:
    """csd-1 over the whole of ICD-10-CM/PCS, which the judge sees a prefix of."""
    for corpus in judged.corpora:
        assert corpus.concept_codes
        for rid, codes in corpus.concept_codes.items():
            assert len(codes) == len(set(codes)), rid
