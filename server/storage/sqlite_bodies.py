"""How the SQLite store keeps resource bodies small: zstd with a dictionary per type.

A FHIR body is mostly the same keys, systems and profile URLs as every other body of
its type, so on its own it compresses only ~2x, but against a dictionary trained on
bodies of the same type ~6.5x (Synthea Observations: 1,030 bytes to 150). Dictionaries
are trained from the store's own data, never shipped: a shipped one would carry code
displays (SNOMED CT, CPT) into the distribution. Each is stored once, in
``body_dictionaries``, and never changes, so a body stays decodable for as long as the
row of its dictionary exists.

Why zstd and not zlib (layout 2 used zlib with a 32 KiB preset dictionary): deflate
re-reads its preset dictionary into fresh hash tables for every body, ~60-90 µs of CPU
per write whatever the body's size, the largest single cost of storing an AuditEvent.
zstd digests a dictionary once (a prepared compressor per type) and then compresses a
1 KB body in ~3 µs, and its trainer picks the fragments that recur, which also gives
~35 % smaller bodies than a concatenation of samples (measured by ``bench/store_size.py``).

Stored blob layout (the first byte says which):

* ``{``...: the JSON itself (stores written before 0.4, or bodies too small to gain;
  any first byte above ``0x08``: JSON text never starts with a control character);
* ``0x01`` + raw deflate: plain zlib (layout 2; read only);
* ``0x02`` + varint dictionary id + raw deflate against that dictionary (layout 2;
  read only);
* ``0x03`` + varint dictionary id + a zstd frame against that dictionary;
* ``0x04`` + a zstd frame without a dictionary (a type that has none yet).

zstd frames carry their content size and no checksum or dictionary id (the varint says
which dictionary). Decoding a body costs a few µs.
"""

from __future__ import annotations

import sqlite3
import threading
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import zstandard

SCHEMA = """
CREATE TABLE IF NOT EXISTS body_dictionaries (
    id         INTEGER PRIMARY KEY,
    type       TEXT NOT NULL,
    dictionary BLOB NOT NULL,
    created    TEXT NOT NULL,
    format     TEXT NOT NULL DEFAULT 'deflate',
    samples    INTEGER NOT NULL DEFAULT 0
);
"""

DEFLATE = 0x01
DEFLATE_WITH_DICTIONARY = 0x02
ZSTD_WITH_DICTIONARY = 0x03
ZSTD = 0x04
RESERVED = 0x08  # tags up to this are formats; JSON text never starts with one
WINDOW = -15  # layout 2's raw deflate streams: no zlib header or checksum
LEVEL = 3  # zstd's default: ~3 µs per 1 KB body with a prepared dictionary
DICTIONARY_SIZE = 32 * 1024
TRAIN_MIN = 32  # bodies of one type in one commit before a dictionary is trained
RETRAIN_AT = 1000  # a dictionary trained on fewer bodies is retrained once, at this many
SAMPLE_LIMIT = 2000  # bodies a dictionary is trained on, spread over what is available
SAMPLE_BYTES = 2 * 1024 * 1024  # and their size: the trainer's time grows with it, not the ratio
# Fast cover's segment and d-mer sizes, fixed: letting the trainer search for them took
# 2-5x as long (30-50 ms per type) for the same ratio on Synthea bodies.
TRAIN_SEGMENT = 1024
TRAIN_DMER = 8
SMALL = 64  # shorter bodies are stored as they are
LARGE = 64 * 1024  # longer bodies are compressed by a compressor of their own


class BodyFormatError(ValueError):
    """A stored body this version cannot decode (unknown tag, missing dictionary)."""


def upgrade(c: sqlite3.Connection) -> None:
    """Add layout 3's columns to a layout 2 ``body_dictionaries`` (its rows are deflate)."""
    columns = {row[1] for row in c.execute("PRAGMA table_info(body_dictionaries)")}
    if "format" not in columns:
        c.execute("ALTER TABLE body_dictionaries ADD COLUMN format TEXT NOT NULL DEFAULT 'deflate'")
    if "samples" not in columns:
        c.execute("ALTER TABLE body_dictionaries ADD COLUMN samples INTEGER NOT NULL DEFAULT 0")


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
    """A zstd dictionary from sample bodies of one type.

    zstd's trainer (fast cover) keeps the fragments that recur across samples. With too
    few or too alike samples it refuses; then the dictionary is the samples' newest
    bytes as they are ("raw content"), which zstd uses as history, as deflate would.
    """
    step = max(1, len(bodies) // SAMPLE_LIMIT)
    picked: list[bytes | bytearray | memoryview] = []
    total = 0
    for body in reversed(bodies[::step]):  # the newest first, up to SAMPLE_BYTES
        if total + len(body) > SAMPLE_BYTES and picked:
            break
        picked.append(body)
        total += len(body)
    picked.reverse()
    try:
        return zstandard.train_dictionary(
            DICTIONARY_SIZE, picked, k=TRAIN_SEGMENT, d=TRAIN_DMER, level=LEVEL
        ).as_bytes()
    except zstandard.ZstdError:
        return b"".join(picked)[-DICTIONARY_SIZE:]


def _compression_dictionary(raw: bytes) -> zstandard.ZstdCompressionDict:
    # DICT_TYPE_AUTO: a trained dictionary starts with zstd's magic, raw content does not.
    return zstandard.ZstdCompressionDict(raw)


def _compressor(dictionary: zstandard.ZstdCompressionDict | None) -> zstandard.ZstdCompressor:
    return zstandard.ZstdCompressor(
        level=LEVEL,
        dict_data=dictionary,
        write_checksum=False,
        write_content_size=True,
        write_dict_id=False,
    )


class _Packer:
    """A zstd dictionary (or none) prepared for compression on first use.

    A prepared dictionary holds ~0.4 MiB of match tables, so a server that only reads
    never builds one. A compressor keeps the working memory of the largest body it has
    seen (~2 MiB for a 250 KB CodeSystem), so bodies over ``LARGE`` get a compressor
    of their own, freed after.
    """

    def __init__(self, did: int, raw: bytes | None, samples: int) -> None:
        self.did = did
        self.samples = samples
        self.prefix = bytes([ZSTD_WITH_DICTIONARY]) + _varint(did) if did else bytes([ZSTD])
        self._raw = raw
        self._dictionary: zstandard.ZstdCompressionDict | None = None
        self._compressor: zstandard.ZstdCompressor | None = None

    def compress(self, body: bytes) -> bytes:
        if self._compressor is None:
            if self._raw is not None:
                self._dictionary = _compression_dictionary(self._raw)
                self._dictionary.precompute_compress(level=LEVEL)
                self._raw = None
            self._compressor = _compressor(self._dictionary)
        if len(body) > LARGE:
            return self.prefix + _compressor(self._dictionary).compress(body)
        return self.prefix + self._compressor.compress(body)


class BodyCodec:
    """Encodes bodies on the writer thread; decodes them on any thread.

    Dictionaries are immutable once committed, so the decode caches need no
    invalidation; a dictionary trained inside a transaction becomes usable by ``encode``
    at once but is forgotten again if that transaction rolls back (``rollback``).
    zstd's (de)compressors are not thread-safe, so each reading thread primes its own.
    """

    def __init__(self) -> None:
        self._by_type: dict[str, _Packer] = {}  # writer: type -> newest zstd dictionary
        self._pending: dict[str, _Packer | None] = {}  # trained, not committed: previous
        self._written: dict[str, int] = {}  # bodies written since open (or training)
        self._plain = _Packer(0, None, 0)  # a type without a dictionary yet
        # any thread: dictionary id -> (format, raw bytes or zstd dictionary)
        self._dictionaries: dict[int, tuple[str, object]] = {}
        self._local = threading.local()
        self._lock = threading.Lock()

    # -- writer side -----------------------------------------------------------------

    def load(self, c: sqlite3.Connection) -> None:
        """Read the newest zstd dictionary of every type (on open). A type whose newest
        dictionary is layout 2's deflate gets a zstd one with its next commit."""
        newest: dict[str, tuple[int, bytes, int]] = {}
        for did, rtype, blob, samples in c.execute(
            "SELECT id, type, dictionary, samples FROM body_dictionaries"
            " WHERE format = 'zstd' ORDER BY id"
        ):
            newest[rtype] = (did, bytes(blob), samples)
        self._by_type = {rtype: _Packer(*entry) for rtype, entry in newest.items()}

    def prepare(self, c: sqlite3.Connection, bodies: Sequence[tuple[str, bytes]]) -> None:
        """Train a dictionary for each type with enough bodies and none yet (or one
        trained on fewer than ``RETRAIN_AT`` bodies, once that many are written).

        Runs inside the caller's transaction, so the dictionary commits with its first
        bodies, or not at all.
        """
        by_type: dict[str, list[bytes]] = {}
        for rtype, body in bodies:
            by_type.setdefault(rtype, []).append(body)
        for rtype, sample in by_type.items():
            written = self._written[rtype] = self._written.get(rtype, 0) + len(sample)
            known = self._by_type.get(rtype)
            if known is not None:
                if known.samples >= RETRAIN_AT or known.samples + written < RETRAIN_AT:
                    continue
            elif written < TRAIN_MIN:
                continue
            if len(sample) < RETRAIN_AT:
                # Types written a few at a time (a Claim per coded encounter): train from
                # the newest stored ones as well.
                sample = self._stored_sample(c, rtype, RETRAIN_AT - len(sample)) + sample
                if len(sample) < TRAIN_MIN:
                    continue
            raw = train(sample)
            samples = min(len(sample), SAMPLE_LIMIT)  # bodies offered (the byte cap aside)
            cur = c.execute(
                "INSERT INTO body_dictionaries (type, dictionary, created, format, samples)"
                " VALUES (?, ?, ?, 'zstd', ?)",
                (rtype, raw, datetime.now(UTC).isoformat(), samples),
            )
            assert cur.lastrowid is not None
            if rtype not in self._pending:
                self._pending[rtype] = known
            self._by_type[rtype] = _Packer(cur.lastrowid, raw, samples)
            self._written[rtype] = 0

    def _stored_sample(self, c: sqlite3.Connection, rtype: str, limit: int) -> list[bytes]:
        rows = c.execute(
            "SELECT body FROM resource_versions WHERE type = ? AND body IS NOT NULL"
            " ORDER BY last_updated DESC, seq DESC LIMIT ?",
            (rtype, limit),
        ).fetchall()
        out = [self.decode(c, row[0]) for row in reversed(rows)]
        return [b for b in out if b is not None]

    def committed(self) -> None:
        self._pending.clear()

    def rollback(self) -> None:
        for rtype, previous in self._pending.items():
            if previous is None:
                self._by_type.pop(rtype, None)
            else:
                self._by_type[rtype] = previous
        self._pending.clear()

    def encode(self, rtype: str, body: bytes) -> bytes:
        """The blob to store for ``body`` (JSON bytes)."""
        if len(body) < SMALL:
            return body
        return self._by_type.get(rtype, self._plain).compress(body)

    # -- any thread ------------------------------------------------------------------

    def decode(self, c: sqlite3.Connection, blob: bytes | None) -> bytes | None:
        """The JSON bytes of a stored blob (``None`` stays ``None``: a delete marker)."""
        if blob is None:
            return None
        if isinstance(blob, str):  # TEXT written by hand into the column: JSON as is
            return blob.encode()
        tag = blob[0] if blob else 0
        if tag == ZSTD_WITH_DICTIONARY:
            did, at = _read_varint(blob, 1)
            return self._zstd_decoder(c, did).decompress(blob[at:])
        if tag == ZSTD:
            return self._zstd_decoder(c, 0).decompress(blob[1:])
        if tag == DEFLATE:
            return zlib.decompress(blob[1:], WINDOW)
        if tag == DEFLATE_WITH_DICTIONARY:
            did, at = _read_varint(blob, 1)
            unpacker = self._deflate_decoder(c, did).copy()
            return unpacker.decompress(blob[at:]) + unpacker.flush()
        if tag > RESERVED:  # JSON text as written before 0.4 (or by hand): served as is
            return blob
        raise BodyFormatError(f"stored body with unknown format tag {tag:#04x}")

    def _dictionary(self, c: sqlite3.Connection, did: int, fmt: str) -> object:
        known = self._dictionaries.get(did)
        if known is None:
            try:
                row = c.execute(
                    "SELECT format, dictionary FROM body_dictionaries WHERE id = ?", (did,)
                ).fetchone()
            except sqlite3.OperationalError:  # a layout 2 store read as it is (read only)
                row = c.execute(
                    "SELECT 'deflate', dictionary FROM body_dictionaries WHERE id = ?", (did,)
                ).fetchone()
            if row is None:
                raise BodyFormatError(f"stored body needs dictionary {did}, which is missing")
            raw = bytes(row[1])
            value: object = _compression_dictionary(raw) if row[0] == "zstd" else raw
            known = (row[0], value)
            with self._lock:
                self._dictionaries[did] = known
        if known[0] != fmt:
            raise BodyFormatError(f"stored body names {fmt} dictionary {did}, a {known[0]} one")
        return known[1]

    def _per_thread(self, kind: str) -> dict[int, Any]:
        """This thread's decoders of one kind, by dictionary id."""
        cache: dict[int, Any] | None = getattr(self._local, kind, None)
        if cache is None:
            cache = {}
            setattr(self._local, kind, cache)
        return cache

    def _zstd_decoder(self, c: sqlite3.Connection, did: int) -> zstandard.ZstdDecompressor:
        decoders = self._per_thread("zstd")
        decoder: zstandard.ZstdDecompressor | None = decoders.get(did)
        if decoder is None:
            if did == 0:
                decoder = zstandard.ZstdDecompressor()
            else:
                dictionary = self._dictionary(c, did, "zstd")
                assert isinstance(dictionary, zstandard.ZstdCompressionDict)
                decoder = zstandard.ZstdDecompressor(dict_data=dictionary)
            decoders[did] = decoder
        return decoder

    def _deflate_decoder(self, c: sqlite3.Connection, did: int) -> zlib._Decompress:
        decoders = self._per_thread("deflate")
        decoder: zlib._Decompress | None = decoders.get(did)
        if decoder is None:
            raw = self._dictionary(c, did, "deflate")
            assert isinstance(raw, bytes)
            decoder = decoders[did] = zlib.decompressobj(WINDOW, zdict=raw)
        return decoder
