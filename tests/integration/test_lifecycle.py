"""The embedded stack's lifecycle as an operator lives it: several terminals, several directories."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

from evmonitor.stack.embedded import evmonitor_cmd
from evmonitor.stack.procs import free_port, wait_for


def operator_env(pipeline, tmp_path: Path) -> dict[str, str]:
    """The pipeline's PostgreSQL and Redis; Kafka and the search server for `up` to start; state in a per-user folder."""
    env = {**pipeline.env, "EVMON_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
           "EVMON_ELASTICSEARCH_URL": f"http://127.0.0.1:{free_port()}", "EVMON_FLOWER_PORT": str(free_port()),
           "EVMON_FLOWER_PASSWORD": "", "XDG_STATE_HOME": str(tmp_path / "xdg"), "COLUMNS": "200"}  # fmt: skip
    env.pop("EVMON_STATE_DIR")  # the default: one place whatever the current directory
    return env


def run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(evmonitor_cmd(*args), env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def status(env: dict[str, str], cwd: Path) -> tuple[int, dict]:
    done = run("status", "--json", env=env, cwd=cwd)
    return done.returncode, json.loads(done.stdout)


def test_up_status_down_from_anywhere_see_one_stack_and_an_attached_up_never_stops_it(pipeline, tmp_path):
    """A second `up` starts nothing; Ctrl-C in an attached foreground `up` leaves the stack running."""
    env = operator_env(pipeline, tmp_path)
    try:
        first = run("up", "--detach", env=env, cwd=tmp_path / "a")
        assert first.returncode == 0, first.stderr[-3000:]
        code, seen = status(env, tmp_path / "b")
        assert code == 0, seen
        pids = {c["name"]: c["pid"] for c in seen["components"] if c["kind"] == "process"}
        assert {"bridge", "beat", "flower", "worker-persist", "worker-index", "worker-maintenance"} <= set(pids)
        assert set(seen["data"]) == {"consumer lag", "newest event", "dead letters", "open alerts", "judged at",
                                     "notifications"}  # fmt: skip
        assert seen["data"]["notifications"].startswith("off (set EVMON_NOTIFY_WEBHOOK_URL")
        assert seen["data"]["consumer lag"].startswith("0 records")

        again = run("up", "--detach", env=env, cwd=tmp_path / "b")
        assert again.returncode == 0 and "started: nothing" in again.stderr, again.stderr[-3000:]

        log = tmp_path / "attached.log"
        with open(log, "w") as out:
            # as from a terminal: Ctrl-C reaches it (pytest-xdist's workers ignore SIGINT, and
            # their children would inherit that)
            attached = subprocess.Popen(evmonitor_cmd("up"), env=env, cwd=tmp_path / "a", stdout=out, stderr=out,
                                        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
        wait_for(lambda: "Ctrl-C leaves it running" in log.read_text(), timeout_s=120, what="the attached up")
        attached.send_signal(signal.SIGINT)
        assert attached.wait(timeout=60) == 0, log.read_text()[-3000:]
        code, after = status(env, tmp_path / "c")
        assert code == 0 and {c["name"]: c["pid"] for c in after["components"] if c["kind"] == "process"} == pids
    finally:
        down = run("down", env=env, cwd=tmp_path / "d")
    assert down.returncode == 0 and "stopped bridge" in down.stderr
    code, _ = status(env, tmp_path / "a")
    assert code == 1


def test_a_taken_port_fails_up_naming_the_setting(pipeline, tmp_path):
    """Flower's port taken by another program: `up` refuses in one line naming EVMON_FLOWER_PORT, not 'up'."""
    env = operator_env(pipeline, tmp_path)
    taken = socket.socket()
    taken.bind(("127.0.0.1", int(env["EVMON_FLOWER_PORT"])))
    taken.listen()
    try:
        done = run("up", "--detach", env=env, cwd=tmp_path)
        assert done.returncode != 0
        said = done.stderr.replace("\n", " ")
        assert "is taken by another program" in said and "EVMON_FLOWER_PORT" in said, said[-3000:]
    finally:
        taken.close()
        run("down", env=env, cwd=tmp_path)
