"""Giving the C heap's free pages back to the system (glibc ``malloc_trim``).

CPython, orjson and zstd allocate through ``malloc``; glibc keeps what they free in its
arenas (one per thread that allocates), so a process's resident size is its peak, not
what it holds. Trimming after a peak (a large bundle, start-up's catalog publication)
returns the free pages; elsewhere (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    return trim


_TRIM = _malloc_trim()


def return_free_memory() -> None:
    """Give the free pages of every malloc arena back to the system.

    A large bundle frees its body, then each entry's bytes as its write is built, while
    orjson's short-lived output buffers come and go in between: without this the freed
    holes stay resident, and the peak is the sum of all of it (~90 MB more for 100 MB).
    """
    if _TRIM is not None:
        _TRIM(0)
