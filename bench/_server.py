"""Start a real `billable serve` process for benchmarks, and measure its memory."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.serve import stop, wait_until_healthy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> float:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def running_server(
    store_url: str,
    extra_args: tuple[str, ...] = (),
    extra_env: dict[str, str] | None = None,
    launcher: tuple[str, ...] = ("-m", "server.cli"),
) -> Iterator[tuple[str, int]]:
    """Yield (base URL, pid) of a server on a free loopback port; stop it afterwards.

    ``launcher`` is what follows the Python executable (``-c CODE`` runs a wrapper that
    patches the server before starting it, as the ingest bench does)."""
    port = free_port()
    if "--auth" not in extra_args:  # `serve` defaults to SMART auth; benches measure the core
        extra_args = ("--auth", "off", *extra_args)
    env = {**os.environ, "BILLABLE_STORE": store_url, **(extra_env or {})}
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, *launcher, "serve", "--port", str(port), *extra_args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def log_tail() -> str:
        log.seek(0)
        return log.read().decode()[-2000:]

    try:
        wait_until_healthy(base, proc, log_tail)
        yield base, proc.pid
    finally:
        stop(proc, grace_s=30)
        log.close()


def descendants(pid: int) -> list[int]:
    """``pid`` and every process under it (validation workers, a forkserver)."""
    found = [pid]
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    found.extend(descendants(int(child)))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its live descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in descendants(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total
