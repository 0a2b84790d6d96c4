"""A fixed mmap threshold for glibc's malloc, so that long-running processes give large buffers back.

The bridge and the ingest workers handle a batch as a few large buffers: its JSON payload (up to
~1 MB for 2,000 events), the records kafka-python fetched, the JSON of each table's rows. glibc
serves a request above its mmap threshold (128 KB) with its own mapping and unmaps it on free,
but it raises that threshold to the size of each mapped chunk freed, up to 32 MB (its "dynamic
mmap threshold"). From then on such buffers come from the heap, between small long-lived
allocations, and a freed one stays resident: resident memory climbs in steps, each time a batch
larger than any before it is handled, without the Python heap growing at all.

Measured with the bench's 10-minute soak at 2,000 events/s (`python -m bench --soak 10`): the
persist worker grew 117 → 138 MB in steps, then held, in three soaks, and the bridge by 4-12 MB,
while tracemalloc saw their Python heaps grow by ~3 and ~2 MB (the batch in hand at either
snapshot). With the threshold fixed, the worker grew 3.0 MB from the soak's second quarter to
its last and the bridge 3.3 MB (docs/benchmarks/2026-11-30-9f0d73d-soak.json).

The price is page faults: a mapped buffer is fresh memory each time. The persist task's body
(decode, fold, write) on 112,000 events in batches of 2,000, three runs each, interleaved:
17.7-18.6 client CPU-µs per event as glibc leaves it, 18.8-20.9 with the threshold fixed
(system time 0.3-0.5 → 1.9-2.7 µs), about 1 µs per event by the medians.

`pin_mmap_threshold` sets the threshold (which also turns its adjustment off, glibc's mallopt(3))
at process start. An operator's MALLOC_MMAP_THRESHOLD_ in the environment wins; on a C library
without mallopt (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

__all__ = ["MMAP_THRESHOLD", "pin_mmap_threshold"]

log = logging.getLogger(__name__)

MMAP_THRESHOLD = 128 * 1024  # glibc's own initial value
_M_MMAP_THRESHOLD = -3  # <malloc.h>


def pin_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at `threshold` bytes; True if it was set here."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        return False  # the operator's choice, already applied by glibc at start
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = mallopt(_M_MMAP_THRESHOLD, threshold) == 1
    if not done:
        log.debug("mallopt(M_MMAP_THRESHOLD, %d) refused", threshold)
    return done
