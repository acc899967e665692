"""glibc allocator settings for a process that moves megabytes per request.

A Produce request of ~1 MB makes buffers of that size (the batch handed to
pulsar-client, and the two copies pulsar-client's Python binding takes of it)
that live until Pulsar acknowledges. glibc serves blocks that large with a
fresh mmap, or trims the heap as soon as they are freed, so nearly every
request paid for first-touch page faults (the kernel zeroing every page):
in the produce benchmark that was a quarter of the event loop's CPU time.
Keeping large blocks in the heap and the freed memory mapped makes the same
copies cheap. The cost is memory that stays mapped after a burst, bounded by
the trim threshold, which stays above the read cache's budget: what cache
evictions and answered requests free is reused without faults.

Nothing is touched in advance: the read cache takes its memory as it fills,
each new page costing one fault the first time (~3 us per 4 KiB, so ~0.1 s of
event-loop CPU for the first 128 MB a fresh process caches), and keeps it.
Earlier the whole budget was touched at start (as JVM servers do with
AlwaysPreTouch): 0.3-2 s of every start, and 512 MB resident from the first
second, for no difference the end-to-end benchmark could tell from its noise.
Faulting ahead of the cache on a thread of its own was tried too: on two cores
it took the CPU from the event loop at exactly the busy moments.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger("kop_fast.memory")

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20  # the largest glibc's own dynamic threshold would ever reach
TRIM_THRESHOLD = 128 << 20


def tune_allocator(cache_bytes: int = 0) -> bool:
    """Apply the settings above when running on glibc; True if they took effect.

    `cache_bytes` is the read cache's budget (memory the process holds under load):
    the trim threshold stays above it, so freeing it does not give it back."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        # The process itself: glibc is in it (ctypes.util.find_library would run ldconfig).
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt: keep their defaults
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    trim = max(TRIM_THRESHOLD, 2 * cache_bytes)
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, trim))
    log.debug("glibc mallopt: mmap threshold %d, trim threshold %d: %s", MMAP_THRESHOLD, trim, ok)
    return ok
