"""A real ``billable serve`` with the coder app, and a real Chromium driven by Selenium.

The browser is Debian's ``chromium`` with its ``chromium-driver`` (``make browser``
installs them); Selenium is pointed at both binaries, so it never downloads a driver or
a browser of its own. Without them the browser tests skip and say why; with
``BILLABLE_REQUIRE_BROWSER=1`` (``make test``) they fail instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from server.webapp import CODER_SCOPES
from tests.support.serve import stop, wait_until_healthy
from tests.webapp.sample import build_sample

CHROMIUM = os.environ.get("BILLABLE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("BILLABLE_CHROMEDRIVER", "/usr/bin/chromedriver")
CODER, PASSWORD = "coder1", "coder-password-1"
ROOT = Path(__file__).resolve().parents[2]


def browser_required() -> bool:
    return os.environ.get("BILLABLE_REQUIRE_BROWSER") == "1"


def _missing_browser() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).exists() or shutil.which(path)):
            return f"{path} not found (install Debian's chromium and chromium-driver: make browser)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


@dataclass(frozen=True, slots=True)
class Served:
    base: str
    store_url: str
    pid: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", *args], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, f"billable {' '.join(args)}: {done.stderr[-2000:]}"


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The Synthea sample loaded and coded, the coder app's client and a coder registered
    (``billable clients add`` / ``billable users add``, as docs/coder-app.md says), and
    ``billable serve --auth smart`` on a free loopback port."""
    missing = _missing_browser()
    if missing:
        if browser_required():
            pytest.fail(f"BILLABLE_REQUIRE_BROWSER=1 but {missing}", pytrace=False)
        pytest.skip(f"browser tests skipped: {missing}")
    work = tmp_path_factory.mktemp("coder-app")
    store_url = f"sqlite:///{work / 'billable.db'}"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "BILLABLE_STORE": store_url,
        "BILLABLE_TIMELY_FILING_DAYS": "0",
        "BILLABLE_EXPORT_DIR": str(work / "export"),
        "BILLABLE_PASSWORD": PASSWORD,
    }
    files = build_sample(work / "fed")
    _cli(env, "load", "--quiet", "--code", *map(str, files))
    _cli(
        env,
        "clients",
        "add",
        "billable-coder-app",
        "--kind",
        "app",
        "--scope",
        CODER_SCOPES,
        "--redirect-uri",
        f"{base}/app/callback",
        "--name",
        "Billable coder app",
    )
    _cli(env, "users", "add", CODER)
    log = open(work / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--port",
            str(port),
            "--auth",
            "smart",
            "--base-url",
            f"{base}/fhir",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        wait_until_healthy(base, proc, lambda: (work / "serve.log").read_text()[-3000:], poll_s=0.2)
        yield Served(base, store_url, proc.pid)
    finally:
        stop(proc, grace_s=20)
        log.close()


@pytest.fixture(scope="session")
def browser(served: Served) -> Iterator[Any]:
    """Headless Chromium at 1366x768 (the smallest screen the app is made for)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1366,768",
        "--force-device-scale-factor=1",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
