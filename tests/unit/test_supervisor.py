"""`up` waits for readiness and reports a process that dies at start (real child processes, no services)."""

from __future__ import annotations

import sys

import pytest
from pydantic import ValidationError

from evmonitor.config import Settings
from evmonitor.errors import ConfigError
from evmonitor.stack.procs import spawn
from evmonitor.stack.supervisor import APP_COMPONENTS, Component, Stack, app_components


def test_a_process_that_exits_at_start_is_reported_with_its_logs_last_lines(tmp_path):
    """wait_ready raises ConfigError naming the process and quoting the end of its log."""
    stack = Stack(Settings(_env_file=None, state_dir=tmp_path), say=lambda _: None)
    proc = spawn("bridge", [sys.executable, "-c", "print('kafka said no'); raise SystemExit(3)"], log_dir=tmp_path)
    stack.components["bridge"] = Component("bridge", "process", owned=True, proc=proc)
    with pytest.raises(ConfigError) as info:
        stack.wait_ready(["bridge"], timeout_s=30)
    assert "bridge exited at start" in str(info.value) and "kafka said no" in str(info.value)


def test_a_process_is_ready_only_once_it_says_so_in_this_starts_lines(tmp_path):
    """An old 'assigned' line in the appended log does not count; the new start's line does."""
    log = tmp_path / "bridge.log"
    log.write_text("bridge: assigned [old run]\n")
    stack = Stack(Settings(_env_file=None, state_dir=tmp_path), say=lambda _: None)
    script = "import time, sys; time.sleep(0.5); print('bridge: assigned [now]', flush=True); time.sleep(30)"
    proc = spawn("bridge", [sys.executable, "-c", script], log_dir=tmp_path)
    stack.components["bridge"] = Component("bridge", "process", owned=True, proc=proc, log_offset=log.stat().st_size)
    try:
        stack.wait_ready(["bridge"], timeout_s=30)
        assert "[now]" in log.read_text()
    finally:
        from evmonitor.stack.procs import stop

        stop(proc, timeout_s=5)


def test_a_worker_that_dies_while_up_asks_the_broker_is_reported_at_once(tmp_path):
    """Waiting for workers over the broker stops when the worker process exits, naming it and its log.

    Uses the machine's Redis as the broker (nobody answers under this stack's key prefix).
    """
    settings = Settings(_env_file=None, state_dir=tmp_path, stack_id=f"t{tmp_path.name[-8:]}".replace("-", ""))
    stack = Stack(settings, say=lambda _: None)
    script = "import time; time.sleep(1.5); print('worker said no', flush=True); raise SystemExit(3)"
    proc = spawn("worker-persist", [sys.executable, "-c", script], log_dir=tmp_path)
    stack.components["worker-persist"] = Component("worker-persist", "process", owned=True, proc=proc)
    with pytest.raises(ConfigError) as info:
        stack.wait_ready(["worker-persist"], timeout_s=120)
    assert "worker-persist exited at start" in str(info.value) and "worker said no" in str(info.value)


def test_up_runs_as_many_solo_persist_and_index_processes_as_the_settings_say(monkeypatch):
    """EVMON_PERSIST_PROCESSES (default 2) and EVMON_INDEX_PROCESSES (default 1) are the -c of those workers, 1..64."""

    def processes(settings: Settings) -> dict[str, tuple[str, str]]:
        found = {}
        for name, args in app_components(settings).items():
            if name.startswith("worker-"):
                found[name] = (args[args.index("--pool") + 1], args[args.index("-c") + 1])
        return found

    assert processes(Settings(_env_file=None)) == {"worker-persist": ("solo", "2"), "worker-index": ("solo", "1"),
                                                   "worker-maintenance": ("prefork", "1")}  # fmt: skip
    monkeypatch.setenv("EVMON_PERSIST_PROCESSES", "4")
    monkeypatch.setenv("EVMON_INDEX_PROCESSES", "3")
    assert processes(Settings(_env_file=None))["worker-persist"] == ("solo", "4")
    assert processes(Settings(_env_file=None))["worker-index"] == ("solo", "3")
    assert APP_COMPONENTS["worker-persist"][APP_COMPONENTS["worker-persist"].index("-c") + 1] == "1"  # not changed
    for bad in ("0", "65"):
        monkeypatch.setenv("EVMON_PERSIST_PROCESSES", bad)
        with pytest.raises(ValidationError):
            Settings(_env_file=None)
