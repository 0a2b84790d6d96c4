"""`--profile`: the persist path once more, with py-spy on the bridge and the persist worker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.pipeline import BENCH_SETTINGS, Scenario, start_pipeline
from bench.profile import Profiler
from bench.workload import Workload, produce
from evmonitor.names import SinkName
from evmonitor.stack.reconcile import wait_drained
from evmonitor.stack.sandbox import Sandbox

__all__ = ["profile_persist"]


def profile_persist(workload: Workload, workdir: Path, admin_url: str, say: Callable[[str], None]) -> dict[str, Any]:
    say("profile: the persist path with py-spy on the bridge and the persist worker")
    with Sandbox(workdir, admin_url=admin_url, sinks=[SinkName.PERSIST], **BENCH_SETTINGS) as sandbox:
        start_pipeline(sandbox, Scenario("profile", (SinkName.PERSIST,)))
        profiler = Profiler({name: proc.pid for name, proc in sandbox.processes.items()}, workdir / "py-spy")
        if not profiler.available:
            say("  py-spy is not installed: `.venv/bin/pip install py-spy`; skipping the profile")
            return {}
        profiler.start()
        sent, _ = produce(sandbox.settings, workload)
        wait_drained(sandbox.settings, sent.targets(), timeout_s=600)
        summary = profiler.stop()
    for name, frames in summary.items():
        say(f"  {name}: busiest functions (self %, inclusive %) of {workdir / 'py-spy' / (name + '.txt')}")
        for function, inclusive, own in frames["by_self"][:8]:
            say(f"    {own:5.1f}  {inclusive:5.1f}  {function}")
    return {"py_spy_dir": str(workdir / "py-spy"), "top": summary}
