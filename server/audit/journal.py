"""The audit queue: an append-only local file of audit records not yet in the store.

With the journal on (``BILLABLE_AUDIT_JOURNAL=1``), a request is answered once its audit
record is written to this file (one ``write`` of one line, which the operating system
keeps when the process dies: the same guarantee as the store's own commits in SQLite's
WAL with ``synchronous=NORMAL``), and the trail commits the queued records to the store
in batches shortly after (``AuditTrail``). After a crash the next process on the machine
finds the file, commits what the store does not have yet and empties it.

Exactly once: each line has a number; the chain's head records, in the same atomic
commit as the events, the last number of each journal it took events from, so a line
already committed is skipped on replay. A journal belongs to one process at a time (an
exclusive ``flock``): the slot of its audit lane (``<key file>.journal-<lane + 1>``, next
to the key and the anchor; lane 0 has ``journal-1``, the first slot of every release
before lanes), or the first free slot when another process holds that one, so two
processes never share a journal and whoever takes a lane over replays what its last
owner left (and a process opening its journal commits those of the other slots no live
process holds, ``JournaledTrail._open``). Its id names the machine (a random id made
once beside the key file) and the slot, so journals of machines sharing one MongoDB
never mix.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from server.audit.chain import AuditRecord

log = logging.getLogger("billable.audit.journal")

SLOTS = 16


class JournalUnavailable(RuntimeError):
    """No journal slot could be taken (every one is held by a live process)."""


class AuditJournal:
    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file
        self.path: Path | None = None
        self.id: str | None = None
        self._fd: int | None = None
        self.last = 0  # the number of the last line written

    def open(self, preferred: int = 1) -> list[tuple[int, str, AuditRecord]]:
        """Take slot ``preferred`` (the lane's), else the first free one; the records its
        file still holds (from a process that stopped before committing them)."""
        self.key_file.parent.mkdir(parents=True, exist_ok=True)
        machine = self._machine_id()
        others = [slot for slot in range(1, SLOTS + 1) if slot != preferred]
        for slot in [preferred, *others]:
            path = slot_path(self, slot)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self._fd, self.path, self.id = fd, path, f"{machine}-{slot}"
            left = read_lines(path)
            self.last = left[-1][0] if left else 0
            return left
        raise JournalUnavailable(f"every audit journal slot next to {self.key_file} is in use")

    def take(self, slot: int) -> list[tuple[int, str, AuditRecord]] | None:
        """Take slot ``slot`` if its file exists, no live process holds it and it still
        has records (a process that stopped before committing them); those records.
        None otherwise (then nothing is held)."""
        path = slot_path(self, slot)
        try:
            if path.stat().st_size == 0:
                return None
            fd = os.open(path, os.O_RDWR | os.O_APPEND)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        self._fd, self.path, self.id = fd, path, f"{self._machine_id()}-{slot}"
        left = read_lines(path)
        self.last = left[-1][0] if left else 0
        return left

    def _machine_id(self) -> str:
        path = self.key_file.with_name(self.key_file.name + ".journal-id")
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            value = secrets.token_hex(8)
            temporary = path.with_name(path.name + f".{os.getpid()}.new")
            temporary.write_text(value + "\n")
            try:
                os.link(temporary, path)  # another process may have made one first
            except FileExistsError:
                value = path.read_text().strip()
            finally:
                temporary.unlink()
            return value

    def write(self, record: AuditRecord, recorded: str) -> int:
        """Queue one record (one line, one ``write``); its number."""
        if self._fd is None:
            raise JournalUnavailable("the audit journal is not open")
        number = self.last + 1
        r = record
        fields = (r.action, r.interaction, r.status, r.client_id, r.user, r.remote_addr)
        line = orjson.dumps([number, recorded, *fields, r.entity, r.query, r.description]) + b"\n"
        written = os.write(self._fd, line)
        if written != len(line):
            raise OSError(f"short write to the audit journal {self.path}")
        self.last = number
        return number

    def empty(self) -> None:
        """Everything in the file is in the store: start the file again (numbers go on)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None


def slot_path(journal: AuditJournal, slot: int) -> Path:
    """The file of journal slot ``slot`` (1, 2, ...) beside the journal's key file."""
    return journal.key_file.with_name(f"{journal.key_file.name}.journal-{slot}")


def read_lines(path: Path) -> list[tuple[int, str, AuditRecord]]:
    """(number, instant, record) of each complete line; a torn last line is dropped."""
    from server.audit.chain import AuditRecord

    out: list[tuple[int, str, AuditRecord]] = []
    for raw in path.read_bytes().split(b"\n"):
        if not raw.strip():
            continue
        try:
            number, recorded, *fields = orjson.loads(raw)
            out.append((int(number), str(recorded), AuditRecord(*fields)))
        except (orjson.JSONDecodeError, TypeError, ValueError):
            log.error("audit journal %s: a damaged line was skipped", path)
    return out
