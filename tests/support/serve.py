"""Waiting for a `billable serve` child process, and stopping it (tests and benches).

Every suite that runs a real server starts it its own way (options, environment, log),
then needs the same two things: wait until ``/healthz`` answers, or fail with the end of
the server's log if it exits or takes too long; and stop it on the way out.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import httpx


def wait_until_healthy(
    base: str,
    process: subprocess.Popen[bytes],
    log_tail: Callable[[], str],
    timeout_s: float = 60,
    poll_s: float = 0.1,
) -> None:
    """Return once ``{base}/healthz`` answers 200; raise with ``log_tail()`` otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"server did not start:\n{log_tail()}")
        time.sleep(poll_s)


def stop(process: subprocess.Popen[bytes], grace_s: float = 10) -> None:
    """SIGTERM (a clean shutdown: the store closes, the WAL is folded), then SIGKILL."""
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
