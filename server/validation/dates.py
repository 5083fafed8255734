"""FHIR date/time comparison as FHIRPath does it (for ``per-1``, ``inv-1``...)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

_DATETIME = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def _parts(value: Any) -> tuple[int, ...] | None:
    """A FHIR date/dateTime/instant → comparable parts, as precise as it is given.

    A value with a time is normalised to UTC (FHIR requires a zone with a time).
    """
    if not isinstance(value, str):
        return None
    m = _DATETIME.match(value)
    if not m:
        return None
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    if hour is None:
        return tuple(int(p) for p in (year, month, day) if p is not None)
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    stamp = f"{year}-{month}-{day}T{hour}:{minute}:{second or '00'}{zone or '+00:00'}"
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    utc = moment.astimezone(UTC).utctimetuple()
    return (utc.tm_year, utc.tm_mon, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, micro)


def compare_datetimes(a: Any, b: Any) -> int | None:
    """-1, 0, 1 as FHIRPath compares two date/times, ``None`` when it cannot say.

    Values of different precision are compared on the parts both have; equal there,
    the answer is unknown (FHIRPath's empty), which never fails an invariant.
    """
    if isinstance(a, str) and isinstance(b, str) and len(a) == len(b):
        # Same shape (precision, fraction digits, zone): ISO 8601 text sorts by time.
        if len(a) <= 10 or (a[-1] == b[-1] == "Z") or (a[-6] in "+-" and a[-6:] == b[-6:]):
            return (a > b) - (a < b)
    pa, pb = _parts(a), _parts(b)
    if pa is None or pb is None:
        return None
    n = min(len(pa), len(pb))
    head_a, head_b = pa[:n], pb[:n]
    if head_a != head_b:
        return -1 if head_a < head_b else 1
    return 0 if len(pa) == len(pb) else None
