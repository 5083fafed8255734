"""FerretDB 1.24 on PostgreSQL, started on loopback in a temporary directory (benches only).

FerretDB's SQLite handler (the test server) never uses secondary indexes; on its
PostgreSQL handler the MongoDB indexes Billable creates become PostgreSQL indexes, so
it is the nearest thing to MongoDB this machine runs. Needs Debian's ``postgresql``
package (``/usr/lib/postgresql/<v>/bin``) and the FerretDB binary of ``make ferretdb``;
as root, PostgreSQL runs as the ``postgres`` user. Everything started is stopped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.ferretdb import answers, ferretdb_binary, free_port


def _pg_bin() -> Path:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise RuntimeError("no PostgreSQL binaries: apt-get install postgresql")


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@contextmanager
def ferretdb_on_postgres(database: str = "billable") -> Iterator[str]:
    """Yield a ``mongodb://`` URL of a private FerretDB on a private PostgreSQL cluster."""
    pg = _pg_bin()
    tmp = Path(tempfile.mkdtemp(prefix="billable-pg-"))
    data, sock = tmp / "data", tmp / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres")
        shutil.chown(sock, "postgres")
    pg_port, ferret_port = free_port(), free_port()
    ferret: subprocess.Popen[bytes] | None = None
    started = False
    try:
        subprocess.run(
            _as_postgres([str(pg / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            _as_postgres(
                [str(pg / "pg_ctl"), "-D", str(data), "-l", str(tmp / "pg.log"), "-w", "-o",
                 f"-p {pg_port} -k {sock} -h 127.0.0.1 -c fsync=on -c shared_buffers=128MB",
                 "start"]
            ),
            check=True,
            capture_output=True,
        )  # fmt: skip
        started = True
        subprocess.run(
            _as_postgres([str(pg / "createdb"), "-h", "127.0.0.1", "-p", str(pg_port),
                          "-U", "postgres", "ferretdb"]),
            check=True,
            capture_output=True,
        )  # fmt: skip
        log = open(tmp / "ferretdb.log", "wb")  # noqa: SIM115 - closed with the process
        ferret = subprocess.Popen(
            [str(ferretdb_binary()), "--handler=postgresql",
             f"--postgresql-url=postgres://postgres@127.0.0.1:{pg_port}/ferretdb",
             f"--listen-addr=127.0.0.1:{ferret_port}", "--debug-addr=-", "--telemetry=disable",
             f"--state-dir={tmp}", "--log-level=warn"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        uri = f"mongodb://127.0.0.1:{ferret_port}/{database}"
        deadline = time.monotonic() + 30
        while not answers(uri):
            if time.monotonic() > deadline or ferret.poll() is not None:
                raise RuntimeError(f"FerretDB did not start: {(tmp / 'ferretdb.log').read_text()}")
            time.sleep(0.2)
        yield uri
    finally:
        if ferret is not None:
            ferret.terminate()
            try:
                ferret.wait(timeout=10)
            except subprocess.TimeoutExpired:
                ferret.kill()
        if started:
            subprocess.run(
                _as_postgres([str(pg / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                capture_output=True,
            )
        shutil.rmtree(tmp, ignore_errors=True)
