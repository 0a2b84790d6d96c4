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
snapshot). With the threshold fixed (MALLOC_MMAP_THRESHOLD_=131072, the same as this module
does) the worker grew 2.6 MB from the soak's second quarter to its last, the bridge 3.9 MB.

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
