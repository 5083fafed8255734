"""What keeps the audit chain honest against someone who can write to the database.

An unkeyed hash chain only shows accidents: whoever can edit the store can edit an event
and recompute every hash after it, or delete the last events and rewind the head. Two
things live outside the store to stop that (docs/security.md, docs/decisions.md):

- a **key**: each event's hash is HMAC-SHA256 with a secret from a key file (made on
  first use, mode 0600) or configured (``BILLABLE_AUDIT_KEY``); without it no valid hash can be
  computed for a changed event;
- an **anchor**: a small file next to the key file with, for each lane (one chain per
  appending process, ``server.audit.lanes``), the sequence number and hash of the last
  event this machine committed (and, for lane 0, where the keyed part begins). A lane
  that ends before its anchor, whose event there has another hash, or that is gone from
  the store altogether, was cut.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("billable.audit.seal")

ANCHOR_SIZE = 256  # bytes: a fixed-size record, rewritten in place


def default_key_file(store_url: str) -> Path:
    """The key file of a store: next to an SQLite file, under ./data for MongoDB."""
    if store_url.startswith("sqlite:///"):
        from server.storage.factory import sqlite_path

        db = sqlite_path(store_url)
        return db.with_name(db.name + ".audit-key")
    database = store_url.rsplit("/", 1)[-1].split("?", 1)[0] or "billable"
    return Path("data") / f"audit-{database}.key"


@dataclass(frozen=True, slots=True)
class Anchor:
    """The last event this machine wrote, and where the keyed part of the chain begins."""

    seq: int
    hash: str
    keyed_after: int  # events 1..keyed_after were written by a release without keying


class AuditSeal:
    def __init__(self, key: bytes | None, anchor_file: Path) -> None:
        self.key = key
        self.anchor_file = anchor_file
        # The keyed state is set up once; each event's MAC starts from a copy of it.
        self._keyed = hmac.new(key, digestmod=hashlib.sha256) if key is not None else None
        self._anchored: dict[int, int] = {}  # lane -> the last seq this process anchored
        self._fd: int | None = None
        self._keyed_after: int | None = None

    @classmethod
    def open(cls, key_file: Path, secret: str | None = None, create: bool = True) -> AuditSeal:
        """The seal for a key file (``create``: make the key if there is none yet).

        ``secret`` (a configured value) wins over the file; the anchor always lives next
        to the key file. With ``create=False`` (``billable audit verify``) a missing key
        leaves the seal keyless: unkeyed events still verify, keyed ones are reported.
        """
        anchor_file = key_file.with_name(key_file.name + ".anchor")
        if secret:
            return cls(secret.encode(), anchor_file)
        if key_file.exists():
            return cls(bytes.fromhex(key_file.read_text().strip()), anchor_file)
        if not create:
            return cls(None, anchor_file)
        key_file.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_bytes(32)
        temporary = key_file.with_name(key_file.name + f".{os.getpid()}.new")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(value.hex() + "\n")
        try:
            os.link(temporary, key_file)  # fails if another process made one first
        except FileExistsError:
            return cls(bytes.fromhex(key_file.read_text().strip()), anchor_file)
        finally:
            temporary.unlink()
        log.warning("made the audit chain key %s; back it up with the store", key_file)
        return cls(value, anchor_file)

    @property
    def key_id(self) -> str | None:
        """A public fingerprint of the key, written on each event (which key sealed it)."""
        if self.key is None:
            return None
        return hashlib.sha256(b"billable-audit-key\n" + self.key).hexdigest()[:16]

    def mac(self, previous: str, canonical: bytes) -> str:
        if self._keyed is None:
            raise RuntimeError("no audit key: events cannot be sealed")
        keyed = self._keyed.copy()
        keyed.update(previous.encode())
        keyed.update(canonical)
        return keyed.hexdigest()

    # -- the anchor ----------------------------------------------------------------------

    def read_anchor(self) -> Anchor | None:
        """Lane 0's anchor (the chain of every release before lanes), or ``None``."""
        anchors = self.read_anchors()
        return anchors.get(0)

    def read_anchors(self) -> dict[int, Anchor]:
        """The anchor of every lane this machine wrote (empty: no anchor file). A slot
        that cannot be read is ``Anchor(-1, "", 0)`` (verify reports it)."""
        try:
            raw = self.anchor_file.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError:
            log.error("the audit anchor %s is unreadable", self.anchor_file)
            return {0: Anchor(-1, "", 0)}
        anchors: dict[int, Anchor] = {}
        for lane in range(0, (len(raw) + ANCHOR_SIZE - 1) // ANCHOR_SIZE):
            slot = raw[lane * ANCHOR_SIZE : (lane + 1) * ANCHOR_SIZE].strip(b" \n\0")
            if not slot:
                continue  # a lane this machine never wrote (a hole in the file)
            try:
                value: Any = orjson.loads(slot)
                anchors[lane] = Anchor(
                    int(value["seq"]), str(value["hash"]), int(value["keyed_after"])
                )
            except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
                log.error("the audit anchor %s is unreadable (lane %d)", self.anchor_file, lane)
                anchors[lane] = Anchor(-1, "", 0)
        return anchors

    def write_anchor(self, seq: int, hash_: str, keyed_after: int, lane: int = 0) -> None:
        """Record the last committed event of ``lane`` (after its commit).

        One small write in place, at the lane's fixed-size slot (``lane * ANCHOR_SIZE``)
        of a file kept open: a rename per commit costs milliseconds on some file systems,
        and padding each record to the slot's size means a shorter one never leaves the
        tail of a longer one behind. Only the process that holds the lane writes its slot
        (``server.audit.lanes``), so no lock of the file is needed. The anchor never
        moves backwards: a lane found cut short (its anchor beyond the store's head) keeps
        the anchor that shows it until the lane has grown past it.
        """
        if self._fd is None:
            self.anchor_file.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.anchor_file, os.O_RDWR | os.O_CREAT, 0o600)
        if lane not in self._anchored:
            # The first write of this lane by this process: what the slot holds already.
            earlier = _slot(os.pread(self._fd, ANCHOR_SIZE, lane * ANCHOR_SIZE))
            self._anchored[lane] = earlier.seq if earlier is not None else 0
            if lane == 0 and earlier is not None and earlier.seq >= 0:
                # Where keying began, as this machine first saw it, wins over the head's.
                self._keyed_after = earlier.keyed_after
            if earlier is not None and earlier.seq > seq:
                log.error(
                    "audit lane %d: the store's chain ends at %d but the anchor %s says %d"
                    " events were written; the anchor keeps showing it",
                    lane,
                    seq,
                    self.anchor_file,
                    earlier.seq,
                )
        if seq <= self._anchored[lane]:
            return
        if lane == 0:
            if self._keyed_after is not None:
                keyed_after = min(keyed_after, self._keyed_after)
            self._keyed_after = keyed_after
        else:
            keyed_after = 0  # lanes began after keying: every event is keyed
        record = orjson.dumps({"seq": seq, "hash": hash_, "keyed_after": keyed_after})
        os.pwrite(self._fd, record.ljust(ANCHOR_SIZE), lane * ANCHOR_SIZE)
        self._anchored[lane] = seq

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()


def _slot(raw: bytes) -> Anchor | None:
    """The anchor in one slot; None when there is none, ``seq`` -1 when unreadable (then
    it is rewritten)."""
    raw = raw.strip(b" \n\0")
    if not raw:
        return None
    try:
        value: Any = orjson.loads(raw)
        return Anchor(int(value["seq"]), str(value["hash"]), int(value["keyed_after"]))
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return Anchor(-1, "", 0)
