"""``ProcessLock``: one holder across processes, and a cancelled waiter leaves no lock
behind (another process holds the file lock in these tests: a real child process)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from server.repository.process_lock import ProcessLock, lock_file
from server.storage.port import BackendInfo

HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _hold(path: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process holding the lock file for ``seconds``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_a_lock_another_process_holds_is_taken_only_after_it_lets_go(tmp_path: Path) -> None:
    path = lock_file(BackendInfo("sqlite", str(tmp_path / "b.db")), "conditional")
    assert path is not None and path.parent == tmp_path / "b.db.locks"
    holder = _hold(path, 1.0)

    async def take() -> float:
        async with ProcessLock(path):
            return time.monotonic()

    started = time.monotonic()
    got = asyncio.run(take())
    assert holder.wait(timeout=30) == 0
    assert got - started >= 0.5  # it waited for the other process


def test_a_waiter_cancelled_while_another_process_holds_the_lock_leaves_it_free(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.lock"
    holder = _hold(path, 0.5)

    async def cancel_then_take() -> None:
        lock = ProcessLock(path)
        waiter = asyncio.create_task(lock.__aenter__())
        await asyncio.sleep(0.1)
        waiter.cancel()
        try:
            await waiter
        except asyncio.CancelledError:
            pass
        assert not lock.locked()
        holder.wait(timeout=30)
        await asyncio.sleep(0.3)  # the cancelled waiter's thread gets the lock and frees it
        async with asyncio.timeout(10):
            async with lock:
                pass

    asyncio.run(cancel_then_take())
    # And another process can take it now.
    _hold(path, 0).wait(timeout=30)


def test_in_memory_sqlite_stores_need_no_lock_file() -> None:
    assert lock_file(BackendInfo("sqlite", ":memory:"), "conditional") is None
    mongo = lock_file(BackendInfo("mongodb", "mongodb://h/db1"), "coding")
    other = lock_file(BackendInfo("mongodb", "mongodb://h/db2"), "coding")
    assert mongo is not None and other is not None and mongo != other
