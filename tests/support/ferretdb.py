"""A MongoDB wire-protocol server for tests: a given URI, or a private FerretDB process.

Order of preference:

1. ``BILLABLE_TEST_MONGO_URI`` (e.g. a real replica set: ``mongodb://localhost:27017/?replicaSet=rs0``);
2. a FerretDB binary (``BILLABLE_FERRETDB_BIN``, default ``~/.cache/billable/bin/ferretdb``,
   built by ``make ferretdb``) started on a free local port with its SQLite handler in a
   temporary directory, and stopped afterwards.

Without either the MongoDB tests are skipped with the reason, unless
``BILLABLE_REQUIRE_MONGO=1``, where that is a failure (CI must not silently skip them).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pymongo
from pymongo.errors import PyMongoError

URI_ENV = "BILLABLE_TEST_MONGO_URI"
BIN_ENV = "BILLABLE_FERRETDB_BIN"
REQUIRE_ENV = "BILLABLE_REQUIRE_MONGO"
DEFAULT_BIN = Path.home() / ".cache" / "billable" / "bin" / "ferretdb"


class MongoNotAvailable(Exception):
    """No MongoDB URI was given and no FerretDB binary can be started; says why."""


def mongo_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0", "false", "no")


def ferretdb_binary() -> Path:
    return Path(os.environ.get(BIN_ENV) or DEFAULT_BIN).expanduser()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port_uri(database: str = "billable") -> str:
    """A URI nothing listens on, failing fast: for "server unreachable" tests."""
    return f"mongodb://127.0.0.1:{free_port()}/{database}?serverSelectionTimeoutMS=300"


def with_database(uri: str, database: str) -> str:
    """``uri`` with its path (the database name) replaced, options kept."""
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(path="/" + database))


def answers(uri: str, timeout_ms: int = 500) -> bool:
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
    )
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


class FerretDB:
    """One FerretDB process on 127.0.0.1 with the SQLite handler in its own directory."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    @property
    def log_path(self) -> Path:
        return self.workdir / "ferretdb.log"

    def start(self, timeout: float = 30.0) -> str:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    str(self.binary),
                    "--handler=sqlite",
                    f"--sqlite-url=file:{data}/",
                    f"--listen-addr=127.0.0.1:{self.port}",
                    "--debug-addr=-",
                    "--telemetry=disable",
                    f"--state-dir={self.workdir}",
                    "--log-level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.log_path.read_text(errors="replace")
                hint = (
                    " (a plain `go install` build: rebuild it with tests/support/build-ferretdb.sh)"
                    if "version.txt" in output
                    else ""
                )
                raise MongoNotAvailable(
                    f"FerretDB ({self.binary}) exited with {self.process.returncode}{hint}: "
                    + output[-2000:]
                )
            if answers(self.uri, timeout_ms=250):
                return self.uri
            time.sleep(0.1)
        self.stop()
        raise MongoNotAvailable(f"FerretDB ({self.binary}) did not answer within {timeout} s")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@contextmanager
def private_ferretdb() -> Iterator[FerretDB]:
    """A FerretDB process of one's own (to stop it under a test), in a temporary directory."""
    binary = ferretdb_binary()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise MongoNotAvailable(_missing_binary_reason(binary))
    with tempfile.TemporaryDirectory(prefix="billable-ferretdb-") as tmp:
        server = FerretDB(binary, Path(tmp))
        server.start()
        try:
            yield server
        finally:
            server.stop()


@contextmanager
def mongo_server() -> Iterator[str]:
    """The base URI of a MongoDB-compatible server for the whole test session."""
    given = os.environ.get(URI_ENV)
    if given:
        if not answers(given, timeout_ms=5000):
            raise MongoNotAvailable(f"{URI_ENV}={given} does not answer")
        yield given
        return
    with private_ferretdb() as server:
        yield server.uri


def _missing_binary_reason(binary: Path) -> str:
    if shutil.which("go") is None:
        return (
            f"no MongoDB for the tests: {URI_ENV} is unset and FerretDB is not built at {binary}"
            " (Go is not installed, so `make ferretdb` cannot build it)"
        )
    return (
        f"no MongoDB for the tests: {URI_ENV} is unset and FerretDB is not built at {binary}:"
        " run `make ferretdb`"
    )
