"""The judged corpus, made and judged once per session for every conformance test."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conformance.corpus import Corpus, build_corpus, manifest
from tests.support.ferretdb import with_database

HERE = Path(__file__).resolve().parent
JUDGE = HERE / "validator" / "target"
IG = HERE / "ig" / "carin-bb-2.0.0"


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


@pytest.fixture(scope="session")
def judged(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Judged:
    classpath = _judge_classpath()
    java = shutil.which("java")
    assert java, "java is not on PATH"
    root = tmp_path_factory.mktemp("corpus")
    urls = {"sqlite": f"sqlite:///{root / 'billable.db'}"}
    mongo = _mongo_url(request)
    if mongo is not None:
        urls["mongo"] = mongo
    # MongoDB (FerretDB in CI) writes several times slower: its leg codes one patient's
    # record (the smaller; every kind of resource and of EOB is still made), SQLite both.
    wanted = {"sqlite": None, "mongo": 1}
    corpora = [build_corpus(url, root, label, wanted[label]) for label, url in urls.items()]
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
