"""`evmonitor up / status / down` as an operator uses them."""

from __future__ import annotations

import json
import os
import signal
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from evmonitor.stack.embedded import evmonitor_cmd
from evmonitor.stack.procs import free_port


def run(*args, env, timeout=180):
    return subprocess.run(evmonitor_cmd(*args), env=env, capture_output=True, text=True, timeout=timeout)


def components(env):
    done = run("status", "--json", env=env)
    return done.returncode, {c["name"]: c for c in json.loads(done.stdout)["components"]}


def listening_addresses(groups: set[int]) -> list[str]:
    """Local addresses of the TCP sockets listening in these process groups (`ss`, iproute2)."""
    found = []
    for line in subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout.splitlines():
        for pid in re.findall(r"pid=(\d+)", line):
            try:
                if os.getpgid(int(pid)) in groups:
                    found.append(line.split()[3])
                    break
            except ProcessLookupError:
                continue
    return found


def persist_nodes(env) -> set[str]:
    """The Celery nodes consuming queue persist, as `celery inspect active_queues` finds them."""
    state = json.loads((Path(env["EVMON_STATE_DIR"]) / "state.json").read_text())
    done = subprocess.run([sys.executable, "-m", "celery", "-A", "evmonitor.app", "inspect", "active_queues", "--json",
                           "--timeout", "2"], env={**env, "EVMON_STACK_ID": state["extra"]["stack_id"]},
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return {node for node, queues in json.loads(done.stdout).items() if any(q["name"] == "persist" for q in queues)}


def test_up_starts_what_is_missing_status_reports_it_and_down_stops_it_in_order(pipeline, tmp_path):
    """Services it must start get started; a died worker is the only thing a second `up` restarts."""
    kafka_port, es_port = free_port(), free_port()
    env = {**pipeline.env, "EVMON_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
           "EVMON_ELASTICSEARCH_URL": f"http://127.0.0.1:{es_port}", "EVMON_FLOWER_PORT": str(free_port()),
           "EVMON_API_LISTEN": f"127.0.0.1:{free_port()}", "EVMON_OCPP_LISTEN": f"127.0.0.1:{free_port()}",
           "EVMON_METRICS_PORT_BASE": str(free_port()),
           "EVMON_FLOWER_PASSWORD": "", "EVMON_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"}  # fmt: skip
    try:
        up = run("up", "--detach", env=env)
        assert up.returncode == 0, up.stderr[-3000:]
        code, first = components(env)
        assert code == 0 and all(c["healthy"] for c in first.values())
        assert first["kafka"]["owned"] and first["kafka"]["address"] == f"127.0.0.1:{kafka_port}"
        assert first["elasticsearch"]["owned"] and not first["postgres"]["owned"] and not first["redis"]["owned"]
        assert {"bridge", "worker-persist", "worker-index", "worker-maintenance", "beat", "flower", "api"} <= set(first)
        # EVMON_PERSIST_PROCESSES (2): two solo workers under the one process `status` shows, each a node of its own
        pid = first["worker-persist"]["pid"]
        persist = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        assert len(persist) == 2 and {n.split("@")[0] for n in persist_nodes(env)} == {"persist-1", "persist-2"}
        # every process's /metrics is a printed scrape target that answers in Prometheus's text format
        targets = dict(re.findall(r"([\w-]+) (http://\S+?/metrics)", up.stderr.split("scrape targets", 1)[1]))
        assert set(targets) == {"api", "bridge", "worker-persist", "worker-index", "worker-maintenance", "gateway"}
        assert targets["api"] == f"http://{env['EVMON_API_LISTEN']}/metrics"
        families = {name: {f.name for f in text_string_to_metric_families(
            urllib.request.urlopen(url, timeout=10).read().decode())} for name, url in targets.items() if name != "api"}  # fmt: skip
        assert "evmonitor_bridge_records" in families["bridge"]
        assert "evmonitor_gateway_chargers_connected" in families["gateway"]
        # nothing `up` started listens beyond 127.0.0.1 (processes and their children: one process group each)
        listening = listening_addresses({c["pid"] for c in first.values() if c["pid"]})
        assert len(listening) >= 10 and all(a.startswith("127.0.0.1:") for a in listening), listening

        os.killpg(first["worker-index"]["pid"], signal.SIGKILL)
        code, _ = components(env)
        assert code == 1, "status must exit 1 while a component is down"
        again = run("up", "--detach", env=env)
        assert again.returncode == 0 and "started: worker-index" in again.stderr.replace("\n", " ")
        code, second = components(env)
        assert code == 0 and second["worker-index"]["pid"] != first["worker-index"]["pid"]
        assert all(second[n]["pid"] == first[n]["pid"] for n in first if n != "worker-index")
    finally:
        down = run("down", env=env)
    assert down.returncode == 0
    stopped = down.stderr.replace("\n", " ")
    order = [stopped.index(name) for name in ("stopped bridge", "stopped worker-persist", "stopped kafka")]
    assert order == sorted(order), stopped
    assert "nothing is running" in run("status", env=env).stderr
    assert not any(Path(f"/proc/{p}").exists() for p in persist)  # `down` stopped both persist processes, warm
    assert (tmp_path / "state" / "logs" / "worker-persist.log").read_text().count("Warm shutdown") == 2
