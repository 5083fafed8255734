"""FHIR instants as Billable stores them: UTC, six fraction digits and a ``Z``.

One format everywhere (``2026-11-27T00:41:35.123456Z``) so that instants compare and sort
as plain strings in both backends.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_micros(micros: int) -> str:
    """Microseconds since the epoch → the stored instant form."""
    moment = _EPOCH + timedelta(microseconds=micros)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}Z"


def format_datetime(moment: datetime) -> str:
    """An aware datetime (any offset) → the stored instant form, in UTC."""
    return format_micros((moment - _EPOCH) // timedelta(microseconds=1))


def now_instant() -> str:
    return format_micros(int(time.time() * 1_000_000))


# A dateTime whose "+HH:MM" offset lost its plus to form decoding ("...T10:00:00 01:00").
_SPACED_OFFSET = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:\d{2})$")


def restore_plus(text: str) -> str:
    """``2026-03-02T10:00:00 00:00`` → ``2026-03-02T10:00:00+00:00``.

    Clients that put an unescaped ``+`` in a query string (HAPI FHIR's generic client with
    ``_since``, hand-written URLs) have it decoded to a space, as form encoding says; a
    space is never valid there, so the only reading is the offset that was meant."""
    return _SPACED_OFFSET.sub(r"\1+\2", text)
