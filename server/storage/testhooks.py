"""Hooks the crash-recovery tests use to freeze a commit half way; inert in production.

When ``BILLABLE_TEST_PAUSE_BEFORE_COMMIT`` holds a number of seconds, a backend calls one
of these functions at the last moment before its commit becomes durable and visible: it
prints ``PAUSED_BEFORE_COMMIT`` on stderr (so the test knows when to kill the process)
and sleeps. Unset, both functions return at once.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

PAUSE_ENV = "BILLABLE_TEST_PAUSE_BEFORE_COMMIT"
PAUSED_MARKER = "PAUSED_BEFORE_COMMIT"


def _requested_pause() -> float:
    raw = os.environ.get(PAUSE_ENV)
    if not raw:
        return 0.0
    try:
        return max(0.0, float(raw))
    except ValueError:
        return 0.0


def _announce() -> None:
    print(PAUSED_MARKER, file=sys.stderr, flush=True)


def pause_before_commit() -> None:
    """Blocking variant, for code running on a worker thread (SQLite's writer)."""
    seconds = _requested_pause()
    if seconds:
        _announce()
        time.sleep(seconds)


async def apause_before_commit() -> None:
    """Async variant, for code running on the event loop (MongoDB)."""
    seconds = _requested_pause()
    if seconds:
        _announce()
        await asyncio.sleep(seconds)
