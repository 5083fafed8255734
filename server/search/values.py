"""Value normalisation shared by extraction (write time) and parsing (query time).

Dates become closed ranges of epoch microseconds (UTC): a partial date is the range it
denotes (``2024`` is the whole year), a dateTime without a zone is taken as UTC. Strings
are compared case- and accent-insensitively through ``normalise_string``.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache

MIN_INSTANT = -(2**62)
MAX_INSTANT = 2**62
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2})(?::(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d+))?)?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


class BadValue(ValueError):
    """A search value that does not parse for its parameter type."""


def _micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@lru_cache(maxsize=8192)
def date_range(text: str) -> tuple[int, int]:
    """A FHIR date, dateTime or instant → ``(lo, hi)`` epoch microseconds, both inclusive.

    Cached: the resources of one encounter share their dates (an Observation's
    ``effective`` and ``issued``, its DiagnosticReport's), so most calls repeat one."""
    m = _DATE.match(text.strip())
    if not m:
        raise BadValue(
            f"{text!r} is not a FHIR date/dateTime (YYYY, YYYY-MM, YYYY-MM-DDThh:mm:ssZ)"
        )
    g = m.groupdict()
    try:
        year = int(g["y"])
        if g["m"] is None:
            start = datetime(year, 1, 1, tzinfo=UTC)
            end = datetime(year + 1, 1, 1, tzinfo=UTC) if year < 9999 else None
        elif g["d"] is None:
            month = int(g["m"])
            start = datetime(year, month, 1, tzinfo=UTC)
            end = (
                datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
                if year < 9999 or month < 12
                else None
            )
        elif g["H"] is None:
            start = datetime(year, int(g["m"]), int(g["d"]), tzinfo=UTC)
            end = start + timedelta(days=1)
        else:
            tz = g["tz"]
            offset = timedelta(0)
            if tz and tz != "Z":
                sign = 1 if tz[0] == "+" else -1
                offset = sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
            local = datetime(
                year, int(g["m"]), int(g["d"]), int(g["H"]), int(g["M"] or 0), int(g["S"] or 0)
            )
            start = local.replace(tzinfo=UTC) - offset
            if g["f"]:
                digits = g["f"][:6]
                start += timedelta(microseconds=int(digits.ljust(6, "0")))
                end = start + timedelta(microseconds=10 ** (6 - len(digits)))
            elif g["S"] is not None:
                end = start + timedelta(seconds=1)
            else:
                end = start + timedelta(minutes=1)
    except (ValueError, OverflowError) as exc:
        raise BadValue(f"{text!r} is not a valid date: {exc}") from exc
    lo = _micros(start)
    hi = _micros(end) - 1 if end is not None else MAX_INSTANT
    return lo, hi


def normalise_string(text: str) -> str:
    """Case- and accent-insensitive form: NFKD, combining marks dropped, casefolded.

    ASCII text (nearly every index string) has nothing to decompose and no combining
    marks, and ``casefold`` is ``lower`` there: the fast path gives the same answer
    without walking the characters one by one in Python."""
    if text.isascii():
        return " ".join(text.lower().split())
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


def string_upper_bound(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``."""
    return prefix + "\U0010ffff"


def parse_number(text: str) -> tuple[float, float, float]:
    """``"100"`` → (100.0, 99.5, 100.5): the value and the range its precision implies."""
    try:
        dec = Decimal(text.strip())
    except InvalidOperation as exc:
        raise BadValue(f"{text!r} is not a number") from exc
    if not dec.is_finite():
        raise BadValue(f"{text!r} is not a number")
    exponent = dec.as_tuple().exponent
    assert isinstance(exponent, int)
    half = Decimal(5) * Decimal(10) ** (exponent - 1)
    return float(dec), float(dec - half), float(dec + half)
