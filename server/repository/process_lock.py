"""Locks that hold across the processes sharing one store on one host.

``billable serve --workers N`` runs N processes over one SQLite file (or one MongoDB
database), and ``billable load`` or ``billable code`` may run beside a server. The store
already serialises commits (SQLite: ``BEGIN IMMEDIATE`` with a busy timeout; both
backends: every write expects a version, so a lost race is a ``VersionConflict``). What
it cannot serialise is a check-then-write done in two steps, such as a conditional
create (search, then create) or coding an Encounter (find its Claim, then write one):
an ``asyncio.Lock`` holds only inside one process. A ``ProcessLock`` is that asyncio
lock plus an exclusive ``flock`` of a file next to the store, taken after it, so at
most one holder per process waits for the file lock, and across processes one holds it.

MongoDB workers on several hosts are not serialised by this (see docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from server.storage.port import BackendInfo


def lock_file(info: BackendInfo, name: str) -> Path | None:
    """The file of the lock ``name`` for a store: in ``<db>.locks/`` beside an SQLite file;
    for MongoDB in a per-user directory of this host, one per database URL. None for an
    in-memory SQLite store, which no other process can open."""
    if info.kind == "sqlite":
        if info.location in ("", ":memory:"):
            return None
        return Path(info.location + ".locks") / f"{name}.lock"
    digest = hashlib.sha256(info.location.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"billable-locks-{os.getuid()}" / digest / f"{name}.lock"


# Threads that wait for a file lock another process holds: their own pool, so waiters
# never take the default executor's threads from the work that would let go of a lock.
_WAITERS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="process-lock")


class ProcessLock:
    """``async with lock:`` excludes other tasks of this process and other processes.

    The file lock is ``flock`` on a descriptor opened for each holding (closed on
    release): it belongs to that descriptor, not to the process, so it never merges two
    holders of one process, and the kernel's deadlock detection for POSIX record locks
    (which sees processes, not tasks, and reports false cycles) does not apply.
    ``stripe`` names one of several independent locks (e.g. per member, hashed): one
    file each."""

    def __init__(self, path: Path | None, stripe: int = 0) -> None:
        self._local = asyncio.Lock()
        self._path = (
            path
            if path is None or not stripe
            else path.with_name(f"{path.name.removesuffix('.lock')}.{stripe}.lock")
        )
        self._fd: int | None = None

    def locked(self) -> bool:
        return self._local.locked()

    async def __aenter__(self) -> ProcessLock:
        await self._local.acquire()
        try:
            if self._path is not None:
                self._fd = await self._lock_file(self._path)
        except BaseException:
            self._local.release()
            raise
        return self

    @staticmethod
    async def _lock_file(path: Path) -> int:
        fd = _open(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            pass  # held by another process: wait for it in a thread
        except BaseException:
            os.close(fd)
            raise
        waiting = asyncio.get_running_loop().run_in_executor(
            _WAITERS, fcntl.flock, fd, fcntl.LOCK_EX
        )
        try:
            await asyncio.shield(waiting)
        except asyncio.CancelledError:
            # The thread may still get the lock: closing the descriptor gives it back.
            waiting.add_done_callback(lambda _f: os.close(fd))
            raise
        except BaseException:
            os.close(fd)
            raise
        return fd

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                os.close(fd)  # releases the flock
        finally:
            self._local.release()


def _open(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
