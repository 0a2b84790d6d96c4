"""Where our processes spend their CPU: py-spy attached to the bridge and the workers during a run.

`py-spy record --format raw` writes collapsed stacks ("frame;frame;frame count"); `top_frames`
turns them into the share of samples in which each of our functions is on the stack (inclusive)
and at the top of it (self), which is what the optimization notes in BENCHMARKS.md quote.
py-spy is optional: without it, `--profile` says how to install it and the rest of the run
goes on.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

__all__ = ["Profiler", "parse_collapsed", "top_frames"]


def _py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def parse_collapsed(text: str) -> list[tuple[list[str], int]]:
    """Collapsed stacks ("a;b;c 12" per line, root first) as (frames, samples)."""
    out = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            out.append((stack.split(";"), int(count)))
    return out


def _short(frame: str) -> str:
    # py-spy frames look like "write_rows (evmonitor/storage/postgres.py:247)"; drop the line
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})" if where else name


def top_frames(stacks: list[tuple[list[str], int]], n: int = 15) -> dict[str, list[tuple[str, float, float]]]:
    """Per stack: the `n` functions with the most inclusive samples, as (function, inclusive %, self %).

    py-spy records only threads that are running (not waiting in poll/select/sleep), so the
    shares are of the process's busy time.
    """
    total = sum(count for _, count in stacks) or 1
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for frames, count in stacks:
        names = [_short(f) for f in frames]
        for name in set(names):
            inclusive[name] += count
        if names:
            own[names[-1]] += count
    ranked = sorted(inclusive, key=lambda k: (-own[k], -inclusive[k]))[:n]
    by_self = [(k, round(100 * inclusive[k] / total, 1), round(100 * own[k] / total, 1)) for k in ranked]
    by_incl = [(k, round(100 * inclusive[k] / total, 1), round(100 * own[k] / total, 1))
               for k, _ in inclusive.most_common(n)]  # fmt: skip
    return {"by_self": by_self, "by_inclusive": by_incl}


class Profiler:
    """Runs `py-spy record` on named pids (and their subprocesses) until `stop()`."""

    def __init__(self, pids: dict[str, int], out_dir: Path, rate_hz: int = 200) -> None:
        self.pids = pids
        self.out_dir = out_dir
        self.rate_hz = rate_hz
        self.procs: dict[str, subprocess.Popen] = {}
        self.binary = _py_spy()

    @property
    def available(self) -> bool:
        return self.binary is not None

    def start(self) -> None:
        if not self.binary:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in self.pids.items():
            cmd = [self.binary, "record", "--pid", str(pid), "--subprocesses", "--nonblocking",
                   "--rate", str(self.rate_hz), "--format", "raw", "--output", str(self.out_dir / f"{name}.txt")]  # fmt: skip
            self.procs[name] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> dict[str, dict[str, list[tuple[str, float, float]]]]:
        """Stop recording (SIGINT makes py-spy write its file) and summarise each profile."""
        out = {}
        for name, proc in self.procs.items():
            proc.send_signal(2)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            path = self.out_dir / f"{name}.txt"
            if path.exists():
                out[name] = top_frames(parse_collapsed(path.read_text()))
        return out
