"""Validation of a bundle's resources: in the server process, or on a pool of processes.

Validation is a compiled JSON Schema (``jsonschema_rs``) plus a few invariants: about
10-15 µs for a typical Synthea resource. Sending a resource to another process costs
about as much (serialise, pipe, parse again) and each worker holds its own copy of the
schemas (~100 MB), so by default the server validates in its own process, on a thread
so the event loop keeps serving. ``BILLABLE_BUNDLE_WORKERS=N`` (N >= 2) moves bundles of
more than ``PARALLEL_MIN`` resources to N worker processes instead, for a machine with
idle cores and bundles of large resources: the resources travel as the compact JSON
bytes the entries already hold, and only the problems come back. Either way the result
is the same as validating in order: the transaction fails on its first invalid entry.

The pool starts on first use, with the ``spawn`` method (never ``fork`` from a process
that runs threads), and each worker asks Linux to end it when the server process ends,
however abruptly (a killed server must not leave workers behind).
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import orjson

from server.bundles.entries import Entry, entry_error
from server.errors import FhirError, Issue
from server.validation import validate_resource

log = logging.getLogger("billable.bundles")

PARALLEL_MIN = 64
_pool: ProcessPoolExecutor | None = None


def workers() -> int:
    """Validation worker processes (``BILLABLE_BUNDLE_WORKERS``; default 0: in process)."""
    raw = os.environ.get("BILLABLE_BUNDLE_WORKERS")
    if raw is not None and raw.strip().isdigit():
        return int(raw)
    return 0


def _get_pool() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(
            max_workers=workers(),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_end_with_parent,
        )
        atexit.register(_reset_pool)
    return _pool


def _end_with_parent() -> None:
    """In a worker: SIGTERM when the parent dies (Linux ``PR_SET_PDEATHSIG``)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the signal was armed
        os._exit(0)


def _validate_chunk(
    items: list[tuple[int, bytes]],
) -> tuple[int, int, list[tuple[Any, ...]]] | None:
    """In a worker: the first invalid resource of the chunk as (index, status, issues)."""
    for index, raw in items:
        try:
            validate_resource(orjson.loads(raw))
        except FhirError as exc:
            issues = [(i.severity, i.code, i.diagnostics, i.expression) for i in exc.issues]
            return index, exc.status, issues
    return None


def validate_sequentially(entries: list[Entry]) -> None:
    """Validate every resource to be written; the first bad entry fails (issues located)."""
    for entry in entries:
        resource = entry.resource
        if resource is not None:
            try:
                validate_resource(resource)
            except FhirError as exc:
                raise entry_error(entry.index, entry.label, exc) from exc


async def validate_entries(entries: list[Entry]) -> None:
    """Validate the resources of ``entries``, on worker processes when there are many."""
    entries = [e for e in entries if e.method in ("POST", "PUT")]
    count = workers()
    if len(entries) < PARALLEL_MIN or count < 2:
        # Off the event loop, so a big bundle does not stall the other requests.
        await asyncio.to_thread(validate_sequentially, entries)
        return
    by_index = {e.index: e for e in entries}
    items = [(e.index, e.resource_bytes() or b"null") for e in entries]
    # A few chunks per worker: balanced when resource sizes vary (EOBs are 10x Observations).
    size = max(1, len(items) // (count * 4))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    loop = asyncio.get_running_loop()
    try:
        pool = _get_pool()
        found = await asyncio.gather(
            *(loop.run_in_executor(pool, _validate_chunk, chunk) for chunk in chunks)
        )
    except BrokenProcessPool:
        log.warning("bundle validation pool broke; validating in process")
        _reset_pool()
        await asyncio.to_thread(validate_sequentially, entries)
        return
    failures = [f for f in found if f is not None]
    if failures:
        index, status, issues = min(failures, key=lambda f: f[0])
        entry = by_index[index]
        error = FhirError(status, [Issue(s, c, d, tuple(e)) for s, c, d, e in issues])
        raise entry_error(entry.index, entry.label, error)


def _reset_pool() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
    _pool = None
