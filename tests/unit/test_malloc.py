"""Large buffers freed by the bridge and the workers go back to the system (evmonitor.malloc).

Each case runs in a fresh interpreter: glibc's mmap threshold is per process. The script frees a
4 MB buffer (which, left to glibc, raises its threshold to 4 MB), then allocates 200 buffers of
600 KB (a batch's payload) each followed by a small allocation that stays (anything that outlives
a batch), frees the big buffers and reports how much of them stayed resident.
"""

from __future__ import annotations

import os
import subprocess
import sys

from evmonitor.malloc import pin_mmap_threshold

SCRIPT = r"""
import os, sys
from evmonitor.malloc import pin_mmap_threshold

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

pinned = pin_mmap_threshold() if sys.argv[1] == "pin" else False
first = bytearray(4 << 20)
del first
base = rss_mb()
big, kept = [], []
for _ in range(200):
    buf = bytearray(600_000)
    buf[::4096] = b"x" * len(buf[::4096])  # touched, as a payload is
    big.append(buf)
    kept.append(bytearray(2000))
grown = rss_mb() - base
del big
print(pinned, round(grown, 1), round(rss_mb() - base, 1))
"""


def run(mode: str, **env: str) -> tuple[bool, float, float]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **env}).stdout.split()  # fmt: skip
    return out[0] == "True", float(out[1]), float(out[2])


def test_with_the_threshold_pinned_freed_batch_buffers_leave_the_resident_memory():
    pinned, grown, retained = run("pin")
    assert pinned
    assert grown > 100  # the 200 buffers were resident
    assert retained < 10, f"{retained} MB of 117 MB of freed buffers still resident"


def test_left_to_glibc_the_same_freed_buffers_stay_resident():
    """The control: what the pin prevents (fails if glibc stops raising its threshold)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", SCRIPT, "leave"], capture_output=True, text=True, check=True,
                         env=env).stdout.split()  # fmt: skip
    assert float(out[2]) > 80


def test_an_operators_malloc_setting_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert pin_mmap_threshold() is False
    pinned, _, _ = run("pin", MALLOC_MMAP_THRESHOLD_="1048576")
    assert pinned is False
