"""How the SQLite store keeps resource bodies small: zlib with a dictionary per type.

A FHIR body is mostly the same keys, systems and profile URLs as every other body of
its type, so on its own it compresses only ~1.9x (plain zlib), but against a 32 KiB
preset dictionary of bodies of the same type ~4.3x (Synthea: 4.5x for Observation,
up to 14x for Patient). Dictionaries are trained from the store's own data, never
shipped: a shipped one would carry code displays (SNOMED CT, CPT) into the
distribution. Each is stored once, in ``body_dictionaries``, and never changes, so a
body stays decodable for as long as the row of its dictionary exists.

Stored blob layout (the first byte says which):

* ``{``...: the JSON itself (stores written before 0.4, or bodies too small to gain;
  any first byte above ``0x08``: JSON text never starts with a control character);
* ``0x01`` + raw deflate: plain zlib (a type that has no dictionary yet);
* ``0x02`` + varint dictionary id + raw deflate against that dictionary.

Decoding a body costs ~10 µs (measured by ``bench/store_size.py``), which keeps reads
well under a millisecond.
"""

from __future__ import annotations

import sqlite3
import threading
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime

SCHEMA = """
CREATE TABLE IF NOT EXISTS body_dictionaries (
    id         INTEGER PRIMARY KEY,
    type       TEXT NOT NULL,
    dictionary BLOB NOT NULL,
    created    TEXT NOT NULL
);
"""

PLAIN = 0x01
WITH_DICTIONARY = 0x02
RESERVED = 0x08  # tags up to this are formats; JSON text never starts with one
LEVEL = 6
WINDOW = -15  # raw deflate: no zlib header or checksum (SQLite pages are checksummed
# by nothing either; a corrupt stream still fails to inflate)
DICTIONARY_SIZE = 32 * 1024  # deflate's window: a longer dictionary is never used
TRAIN_MIN = 32  # bodies of one type in one commit before a dictionary is trained
SMALL = 64  # shorter bodies are stored as they are


class BodyFormatError(ValueError):
    """A stored body this version cannot decode (unknown tag, missing dictionary)."""


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(blob: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(blob):
            raise BodyFormatError("truncated dictionary id in a stored body")
        byte = blob[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def train(bodies: Sequence[bytes]) -> bytes:
    """A preset dictionary from sample bodies of one type.

    zlib has no trainer; a concatenation of whole sample bodies, spread over the batch,
    works nearly as well for documents this alike (deflate prefers the nearest match,
    so the last bytes matter most: the samples are in batch order).
    """
    step = max(1, len(bodies) // 64)
    picked = list(bodies[::step])
    out = b"".join(picked)
    return out[-DICTIONARY_SIZE:]


class BodyCodec:
    """Encodes bodies on the writer thread; decodes them on any thread.

    Dictionaries are immutable once committed, so the decode cache needs no invalidation;
    a dictionary trained inside a transaction becomes usable by ``encode`` at once but
    is forgotten again if that transaction rolls back (``rollback``).
    """

    def __init__(self) -> None:
        self._by_type: dict[str, tuple[int, bytes]] = {}  # writer: type -> newest dictionary
        self._pending: list[str] = []  # types whose dictionary is not committed yet
        self._without: dict[str, int] = {}  # bodies written since open, per type without one
        self._decoders: dict[int, zlib._Decompress] = {}  # primed, copied per body
        self._lock = threading.Lock()

    # -- writer side -----------------------------------------------------------------

    def load(self, c: sqlite3.Connection) -> None:
        """Read the newest dictionary of every type (on open)."""
        self._by_type = {
            rtype: (did, bytes(blob))
            for did, rtype, blob in c.execute(
                "SELECT id, type, dictionary FROM body_dictionaries ORDER BY id"
            )
        }

    def prepare(self, c: sqlite3.Connection, bodies: Sequence[tuple[str, bytes]]) -> None:
        """Train a dictionary for each type with enough bodies in this commit and none yet.

        Runs inside the caller's transaction, so the dictionary commits with its first
        bodies, or not at all.
        """
        by_type: dict[str, list[bytes]] = {}
        for rtype, body in bodies:
            if rtype not in self._by_type:
                by_type.setdefault(rtype, []).append(body)
        for rtype, sample in by_type.items():
            if len(sample) < TRAIN_MIN:
                # Types written a few at a time (a Claim per coded encounter): once enough
                # of them are stored, train from the newest stored ones instead.
                self._without[rtype] = self._without.get(rtype, 0) + len(sample)
                if self._without[rtype] < TRAIN_MIN:
                    continue
                sample = self._stored_sample(c, rtype) + sample
                if len(sample) < TRAIN_MIN:
                    continue
            dictionary = train(sample)
            cur = c.execute(
                "INSERT INTO body_dictionaries (type, dictionary, created) VALUES (?, ?, ?)",
                (rtype, dictionary, datetime.now(UTC).isoformat()),
            )
            assert cur.lastrowid is not None
            self._by_type[rtype] = (cur.lastrowid, dictionary)
            self._pending.append(rtype)

    def _stored_sample(self, c: sqlite3.Connection, rtype: str) -> list[bytes]:
        rows = c.execute(
            "SELECT body FROM resource_versions WHERE type = ? AND body IS NOT NULL"
            " ORDER BY last_updated DESC, seq DESC LIMIT 64",
            (rtype,),
        ).fetchall()
        out = [self.decode(c, row[0]) for row in reversed(rows)]
        return [b for b in out if b is not None]

    def committed(self) -> None:
        self._pending.clear()

    def rollback(self) -> None:
        for rtype in self._pending:
            self._by_type.pop(rtype, None)
        self._pending.clear()

    def encode(self, rtype: str, body: bytes) -> bytes:
        """The blob to store for ``body`` (JSON bytes)."""
        if len(body) < SMALL:
            return body
        known = self._by_type.get(rtype)
        if known is None:
            packer = zlib.compressobj(LEVEL, zlib.DEFLATED, WINDOW)
            return bytes([PLAIN]) + packer.compress(body) + packer.flush()
        did, dictionary = known
        packer = zlib.compressobj(LEVEL, zlib.DEFLATED, WINDOW, zdict=dictionary)
        return bytes([WITH_DICTIONARY]) + _varint(did) + packer.compress(body) + packer.flush()

    # -- any thread ------------------------------------------------------------------

    def decode(self, c: sqlite3.Connection, blob: bytes | None) -> bytes | None:
        """The JSON bytes of a stored blob (``None`` stays ``None``: a delete marker)."""
        if blob is None:
            return None
        if isinstance(blob, str):  # TEXT written by hand into the column: JSON as is
            return blob.encode()
        tag = blob[0] if blob else 0
        if tag == PLAIN:
            return zlib.decompress(blob[1:], WINDOW)
        if tag == WITH_DICTIONARY:
            did, at = _read_varint(blob, 1)
            decoder = self._decoders.get(did)
            if decoder is None:
                decoder = self._decoder(c, did)
            unpacker = decoder.copy()
            return unpacker.decompress(blob[at:]) + unpacker.flush()
        if tag > RESERVED:  # JSON text as written before 0.4 (or by hand): served as is
            return blob
        raise BodyFormatError(f"stored body with unknown format tag {tag:#04x}")

    def _decoder(self, c: sqlite3.Connection, did: int) -> zlib._Decompress:
        row = c.execute("SELECT dictionary FROM body_dictionaries WHERE id = ?", (did,)).fetchone()
        if row is None:
            raise BodyFormatError(f"stored body needs dictionary {did}, which is missing")
        decoder = zlib.decompressobj(WINDOW, zdict=bytes(row[0]))
        with self._lock:
            self._decoders[did] = decoder
        return decoder
