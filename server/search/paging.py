"""Paging cursors: keyset positions, signed, bound to their query, expiring.

A ``next``/``previous`` link carries ``_cursor``: the keyset position (sort values +
type + id) of the last/first entry of the page, the direction, the time it was issued
and a digest of the query it belongs to, signed with a per-process secret. Keyset
paging never repeats or skips a match when data changes between pages (a resource
whose sort value changes moves with it). A cursor older than ``CURSOR_TTL_SECONDS``, or
signed by another server process, answers 410 Gone; a malformed one 400.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from server.errors import FhirError

CURSOR_TTL_SECONDS = 3600
_SECRET = secrets.token_bytes(32)


@dataclass(frozen=True, slots=True)
class Cursor:
    position: tuple[Any, ...]
    backwards: bool


def _encode_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"b": value.hex()}
    if isinstance(value, float) and math.isinf(value):
        return {"f": "inf" if value > 0 else "-inf"}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        if "b" in value:
            return bytes.fromhex(value["b"])
        if "f" in value:
            return float(value["f"])
    return value


def query_digest(pairs: Sequence[tuple[str, str]]) -> str:
    canonical = "&".join(f"{k}={v}" for k, v in sorted(pairs))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_cursor(
    position: tuple[Any, ...], backwards: bool, digest: str, now: float | None = None
) -> str:
    payload = orjson.dumps(
        {
            "p": [_encode_value(v) for v in position],
            "d": "b" if backwards else "f",
            "t": int(now if now is not None else time.time()),
            "q": digest,
        }
    )
    sig = hmac.new(_SECRET, payload, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(payload + sig).decode().rstrip("=")


def decode_cursor(text: str, digest: str, now: float | None = None) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        payload, sig = raw[:-12], raw[-12:]
        data = orjson.loads(payload)
        position = tuple(_decode_value(v) for v in data["p"])
        backwards = data["d"] == "b"
        issued = int(data["t"])
        belongs_to = str(data["q"])
    except (ValueError, KeyError, TypeError) as exc:
        raise FhirError.of(400, "invalid", "_cursor: malformed paging cursor") from exc
    expected = hmac.new(_SECRET, payload, hashlib.sha256).digest()[:12]
    current = now if now is not None else time.time()
    if not hmac.compare_digest(sig, expected) or current - issued > CURSOR_TTL_SECONDS:
        raise FhirError.of(
            410,
            "expired",
            "This paging link has expired; run the search again from its first page",
        )
    if belongs_to != digest:
        raise FhirError.of(
            400, "invalid", "_cursor: the paging cursor belongs to a different search"
        )
    return Cursor(position, backwards)
