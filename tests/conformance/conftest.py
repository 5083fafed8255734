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
# Encounters of the MongoDB leg's record: its latest three code clean (professional, and
# the two turned institutional), the fourth makes a claim that is not submitted.
MONGO_ENCOUNTERS = 4


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


def _build_corpora(request: pytest.FixtureRequest, root: Path) -> list[Corpus]:
    """The SQLite leg (the whole sample), then the MongoDB leg when a server is at hand.

    MongoDB (FerretDB in CI: its SQLite handler scans a collection for every query, so
    each request costs more as the store grows) gets a smaller record: the smaller
    patient's latest encounters, which still make every kind of resource and of EOB. The
    catalog's full content comes from the terminology module, the same on both: the SQLite
    leg has the judge check it."""
    corpora = [build_corpus(f"sqlite:///{root / 'billable.db'}", root, "sqlite")]
    mongo = _mongo_url(request)
    if mongo is not None:
        corpora.append(
            build_corpus(
                mongo,
                root,
                "mongo",
                patients_wanted=1,
                recent_encounters=MONGO_ENCOUNTERS,
                catalog_content=False,
            )
        )
    return corpora


@pytest.fixture(scope="session")
def judged(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Judged:
    classpath = _judge_classpath()
    java = shutil.which("java")
    assert java, "java is not on PATH"
    root = tmp_path_factory.mktemp("corpus")
    manifest_path, report_path = root / "manifest.json", root / "report.json"
    # The judge starts first: its JVM loads the definitions and warms up while the corpus
    # is made, then waits for a line on stdin (the manifest is complete).
    out, err = root / "judge.out", root / "judge.err"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        judge = subprocess.Popen(
            [
                java,
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-cp",
                classpath,
                "org.billable.conformance.Judge",
                str(IG),
                str(manifest_path),
                str(report_path),
                "--wait",
            ],
            stdin=subprocess.PIPE,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        corpora = _build_corpora(request, root)
        manifest_path.write_bytes(orjson.dumps(manifest(corpora)))
        assert judge.stdin is not None
        try:
            judge.stdin.write(b"go\n")
            judge.stdin.close()
        except BrokenPipeError:
            pass  # the judge stopped early: its output says why
        returncode = judge.wait(timeout=600)
    finally:
        if judge.poll() is None:
            judge.kill()
            judge.wait()
    output = out.read_text()
    assert returncode in (0, 1), f"the judge could not run:\n{output}\n{err.read_text()}"
    report = orjson.loads(report_path.read_bytes())
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    print(f"\n{summary}")
    return Judged(corpora, report, summary)
