"""The one stored instant form: UTC, six fraction digits, Z; sorts as a string."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from server.instants import format_datetime, format_micros


def test_offsets_are_converted_to_utc():
    moment = datetime(2026, 1, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert format_datetime(moment) == "2025-12-31T23:30:00.000000Z"


def test_microseconds_and_dates_before_the_epoch():
    assert format_micros(1) == "1970-01-01T00:00:00.000001Z"
    assert format_micros(-1) == "1969-12-31T23:59:59.999999Z"


def test_the_string_order_is_the_time_order():
    values = [format_micros(m) for m in (-(10**15), 0, 5, 10**15, 4 * 10**15)]
    assert values == sorted(values)
