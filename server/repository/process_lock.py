"""Locks that hold across the processes sharing one store on one host.

``billable serve --workers N`` runs N processes over one SQLite file (or one MongoDB
database), and ``billable load`` or ``billable code`` may run beside a server. The store
already serialises commits (SQLite: ``BEGIN IMMEDIATE`` with a busy timeout; both
backends: every write expects a version, so a lost race is a ``VersionConflict``). What
it cannot serialise is a check-then-write done in two steps, such as a conditional
create (search, then create) or coding an Encounter (find its Claim, then write one):
an ``asyncio.Lock`` holds only inside one process. A ``ProcessLock`` is that asyncio
lock plus a POSIX record lock on a file next to the store, taken after it, so at most
one holder per process waits for the file lock, and across processes one holds it.

MongoDB workers on several hosts are not serialised by this (see docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import tempfile
import threading
from pathlib import Path
from types import TracebackType

from server.storage.port import BackendInfo


def lock_directory(info: BackendInfo) -> Path:
    """Beside an SQLite file; for MongoDB a per-user directory of this host, one lock
    file name per database URL."""
    if info.kind == "sqlite":
        return Path(info.location).parent
    return Path(tempfile.gettempdir()) / f"billable-locks-{os.getuid()}"


def lock_file(info: BackendInfo, name: str) -> Path | None:
    """The file of the lock ``name`` for a store (None: an in-memory SQLite store, which
    no other process can open)."""
    if info.kind == "sqlite":
        if info.location in ("", ":memory:"):
            return None
        return Path(info.location + f".{name}.lock")
    digest = hashlib.sha256(info.location.encode()).hexdigest()[:16]
    return lock_directory(info) / f"mongo-{digest}.{name}.lock"


class _File:
    """One open lock file per path and process, and how many holders each byte has here.

    POSIX record locks belong to the process: a second lock of the same byte by this
    process succeeds at once, and one unlock frees it for every holder; all are dropped
    when any descriptor of the file is closed. So each file stays open, and a byte is
    locked when its first holder here takes it and unlocked when its last one leaves
    (two repositories over one store in one process exclude each other only through
    their asyncio locks, as before)."""

    _open: dict[Path, int] = {}
    _holders: dict[tuple[Path, int], int] = {}
    _guard = threading.Lock()

    @classmethod
    def descriptor(cls, path: Path) -> int:
        fd = cls._open.get(path)
        if fd is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            cls._open[path] = fd
        return fd

    @classmethod
    def try_acquire(cls, path: Path, stripe: int) -> bool:
        with cls._guard:
            key = (path, stripe)
            if cls._holders.get(key, 0) == 0:
                try:
                    fcntl.lockf(cls.descriptor(path), fcntl.LOCK_EX | fcntl.LOCK_NB, 1, stripe)
                except OSError:
                    return False  # another process holds it
            cls._holders[key] = cls._holders.get(key, 0) + 1
            return True

    @classmethod
    def acquire(cls, path: Path, stripe: int) -> None:
        """Blocking (run in a thread)."""
        if cls.try_acquire(path, stripe):
            return
        with cls._guard:
            fd = cls.descriptor(path)
        fcntl.lockf(fd, fcntl.LOCK_EX, 1, stripe)
        with cls._guard:
            cls._holders[(path, stripe)] = cls._holders.get((path, stripe), 0) + 1

    @classmethod
    def release(cls, path: Path, stripe: int) -> None:
        with cls._guard:
            key = (path, stripe)
            left = cls._holders.get(key, 0) - 1
            cls._holders[key] = max(left, 0)
            if left <= 0:
                fcntl.lockf(cls.descriptor(path), fcntl.LOCK_UN, 1, stripe)


class ProcessLock:
    """``async with lock:`` excludes other tasks of this process and other processes.

    ``stripe`` picks a byte of the lock file, so one file carries many independent locks
    (e.g. one per member, hashed)."""

    def __init__(self, path: Path | None, stripe: int = 0) -> None:
        self._local = asyncio.Lock()
        self._path = path
        self._stripe = stripe

    def locked(self) -> bool:
        return self._local.locked()

    async def __aenter__(self) -> ProcessLock:
        await self._local.acquire()
        try:
            if self._path is not None:
                await self._lock_file(self._path)
        except BaseException:
            self._local.release()
            raise
        return self

    async def _lock_file(self, path: Path) -> None:
        if _File.try_acquire(path, self._stripe):
            return
        # Held by another process: wait for it in a thread.
        waiting = asyncio.get_running_loop().run_in_executor(
            None, _File.acquire, path, self._stripe
        )
        try:
            await asyncio.shield(waiting)
        except asyncio.CancelledError:
            # The thread still gets the lock: give it back as soon as it does.
            waiting.add_done_callback(lambda f: self._release_late(f, path))
            raise

    def _release_late(self, got: asyncio.Future[None], path: Path) -> None:
        if not got.cancelled() and got.exception() is None:
            _File.release(path, self._stripe)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._path is not None:
                _File.release(self._path, self._stripe)
        finally:
            self._local.release()
