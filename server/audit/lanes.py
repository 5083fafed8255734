"""Lanes: one hash chain per process appending to a store's audit trail.

Every process that writes audit events (each ``serve --workers`` worker, a ``billable
load`` beside a server) appends to a chain of its own, its *lane*, so no process ever
waits for or rereads another's head. A process claims the first free lane the first time
it appends: an exclusive, non-blocking ``flock`` of a lane file beside the store
(``<db>.locks/audit-lane-<k>.lock``; for MongoDB a per-user directory of this host),
held until the trail closes or the process ends, so the next process to start takes it
over and continues that lane's chain. Nothing is configured.

Lane 0 is the chain of every release before lanes: its events keep their ids
(``000000000001``), its head record ``x-billable-audit-head/head`` and the first slot of
the anchor, so an existing store keeps verifying and its chain keeps growing. Lane ``k``
(1 to ``MAX_LANES - 1``) names its events ``L<kk>-<seq>`` (``L01-000000000001``: ids
sort by lane, then by sequence number), its head ``head-L<kk>``, and has slot ``k`` of
the anchor file, which therefore lists the last event of every lane this machine wrote
(``server.audit.seal``): that is what ties the lanes together (docs/security.md).

A claim is a hint for speed, not what keeps a lane linear: each commit still expects the
lane head's version, so two writers that share a lane (processes on two hosts over one
MongoDB, whose lane files are per host) serialise on it as one chain always did.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from server.repository.process_lock import lock_file
from server.storage.port import BackendInfo

MAX_LANES = 64  # ids and head names carry two digits; verify probes every lane
HEAD_ID = "head"


def lane_name(lane: int) -> str:
    return f"L{lane:02d}"


def event_id(seq: int, lane: int = 0) -> str:
    """The id of event ``seq`` of ``lane`` (lane 0: the ids of every release before)."""
    return f"{seq:012d}" if lane == 0 else f"{lane_name(lane)}-{seq:012d}"


def head_id(lane: int = 0) -> str:
    return HEAD_ID if lane == 0 else f"head-{lane_name(lane)}"


class LaneClaim:
    """The lane this process appends to, held (``flock``) until ``release``."""

    def __init__(self, info: BackendInfo) -> None:
        self._info = info
        self._fd: int | None = None
        self.lane: int | None = None

    def claim(self) -> int:
        """Take the first free lane (once; later calls return it). A store no other
        process can open (in-memory SQLite) has lane 0 to itself."""
        if self.lane is not None:
            return self.lane
        for lane in range(MAX_LANES):
            path = lane_file(self._info, lane)
            if path is None:
                self.lane = 0
                return 0
            fd = _open(path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # another process (or another trail of this one) has it
                continue
            except BaseException:
                os.close(fd)
                raise
            self._fd, self.lane = fd, lane
            return lane
        raise RuntimeError(f"every audit lane ({MAX_LANES}) of this store is in use")

    def release(self) -> None:
        """Let the lane go (closing the descriptor drops the lock); the next claim may
        take another."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.lane = None

    def __del__(self) -> None:
        self.release()


def lane_file(info: BackendInfo, lane: int) -> Path | None:
    return lock_file(info, f"audit-lane-{lane}")


def _open(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
