"""glibc allocator settings for a process that moves megabytes per request.

A Produce request of ~1 MB makes buffers of that size (the batch handed to
pulsar-client, and the two copies pulsar-client's Python binding takes of it)
that live until Pulsar acknowledges. glibc serves blocks that large with a
fresh mmap, or trims the heap as soon as they are freed, so nearly every
request paid for first-touch page faults (the kernel zeroing every page):
in the produce benchmark that was a quarter of the event loop's CPU time.
Keeping large blocks in the heap and the freed memory mapped makes the same
copies cheap. The cost is memory that stays mapped after a burst, bounded by
TRIM_THRESHOLD.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger("kop_fast.memory")

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20  # the largest glibc's own dynamic threshold would ever reach
TRIM_THRESHOLD = 128 << 20
RESERVE_CHUNK = 8 << 20


def tune_allocator(reserve_bytes: int = 0) -> bool:
    """Apply the settings above when running on glibc; True if they took effect.

    With `reserve_bytes` (the read cache's budget: memory the process is going to hold
    anyway under load) that much heap is touched now and kept mapped, as JVM servers do
    with AlwaysPreTouch: the first minutes of traffic then do not pay a page fault per 4 KiB
    of every batch they cache."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt: keep their defaults
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    trim = max(TRIM_THRESHOLD, 2 * reserve_bytes)  # above the reserve, or freeing it would trim it away
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, trim))
    log.debug("glibc mallopt: mmap threshold %d, trim threshold %d: %s", MMAP_THRESHOLD, trim, ok)
    if ok and reserve_bytes > 0:
        # bytearray(n) writes its n zero bytes: every page is faulted in here, then the
        # chunks go back to the heap's free memory, which the trim threshold keeps mapped.
        chunks = [bytearray(RESERVE_CHUNK) for _ in range(-(-reserve_bytes // RESERVE_CHUNK))]
        del chunks
    return ok
