"""HAPI FHIR's generic client, unchanged, against a real `billable serve` process.

``validator/.../ClientCheck.java`` makes the calls an integration engineer makes first
(conditional create with HAPI's absolute If-None-Exist, ``_since`` and ``_lastUpdated``
with a Date, whose "+" offset HAPI leaves unescaped, ``count(0)``, ``elementsSubset`` on a
read, JSON Patch) and reports "N passed, M failed".
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.api.test_server_process import server  # noqa: F401  (the served process)
from tests.conformance.conftest import _judge_classpath

pytestmark = pytest.mark.conformance


def test_hapi_generic_client_works_unchanged(server: tuple[str, object, Path]) -> None:  # noqa: F811
    classpath = _judge_classpath()
    java = shutil.which("java")
    assert java, "java is not on PATH"
    base, _proc, _tmp = server
    run = subprocess.run(
        [
            java,
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp",
            classpath,
            "org.billable.conformance.ClientCheck",
            f"{base}/fhir",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(run.stdout)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr[-3000:]}"
    assert "0 failed" in run.stdout
