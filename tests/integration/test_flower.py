"""Flower, a real process, behind basic auth: what an operator (or a script) sees through its HTTP API."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import urllib.error
import urllib.request
from typing import Any

from evmonitor.stack.embedded import evmonitor_cmd
from evmonitor.stack.procs import free_port, wait_for

QUEUES = {"persist", "index", "maintenance"}


def get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
            return response.status, json.loads(body) if body.strip().startswith((b"{", b"[")) else body
    except urllib.error.HTTPError as exc:
        return exc.code, None


def wait_for_workers(base: str, auth: tuple[str, str], names: set[str], hint: str) -> dict[str, Any]:
    """Poll /api/workers until every named worker (prefix before @) answers with its queues."""
    seen: dict[str, Any] = {}

    def ready() -> bool:
        status, body = get(f"{base}/api/workers?refresh=1", auth)
        seen.clear()
        seen.update(body if status == 200 and isinstance(body, dict) else {})
        return names <= {w.split("@")[0] for w, info in seen.items() if info.get("active_queues")}

    wait_for(ready, timeout_s=60, what=f"Flower to list workers {sorted(names)}", hint=hint, interval_s=0.5)
    return seen


def test_flower_refuses_requests_without_its_credentials_and_lists_workers_and_queues(pipeline):
    """401 without or with wrong credentials; with them, /api/workers and /api/queues/length show all three queues."""
    port = free_port()
    auth = ("ops", "flower-test-secret")
    pipeline.settings = pipeline.settings.model_copy(
        update={"flower_port": port, "flower_user": auth[0], "flower_password": auth[1]}
    )
    for queue in sorted(QUEUES):
        pipeline.start_worker(queue)
    pipeline.wait_workers(tuple(QUEUES))
    pipeline.start("flower", "flower")
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: get(f"{base}/api/workers")[0] == 401, timeout_s=30, what="Flower", hint=pipeline.logs_hint())

    assert get(f"{base}/api/workers")[0] == 401
    assert get(f"{base}/api/workers", ("ops", "wrong"))[0] == 401
    assert get(f"{base}/", None)[0] == 401
    workers = wait_for_workers(base, auth, {f"worker-{q}" for q in QUEUES}, pipeline.logs_hint())
    served = {q["name"] for info in workers.values() for q in info["active_queues"]}
    assert served == QUEUES
    status, lengths = get(f"{base}/api/queues/length", auth)
    assert status == 200 and {q["name"] for q in lengths["active_queues"]} == QUEUES
    status, page = get(f"{base}/broker", auth)  # the page an operator opens for queues
    assert status == 200 and all(q.encode() in page for q in QUEUES)


def test_flower_without_a_password_refuses_to_start(pipeline):
    """`evmonitor flower` with no EVMON_FLOWER_PASSWORD exits 2 and says what to set."""
    env = {**pipeline.env, "EVMON_FLOWER_PASSWORD": ""}
    done = subprocess.run(evmonitor_cmd("flower"), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "EVMON_FLOWER_PASSWORD" in done.stderr


def test_evmonitor_up_starts_flower_with_generated_credentials_it_prints(pipeline, tmp_path):
    """`evmonitor up -d` prints generated credentials; they open Flower, which lists the up's workers (persist's two
    solo processes each as a node of its own)."""
    port = free_port()
    env = {**pipeline.env, "EVMON_FLOWER_PORT": str(port), "EVMON_FLOWER_PASSWORD": "",
           "EVMON_STATE_DIR": str(tmp_path / "up-state"), "COLUMNS": "200"}  # fmt: skip
    try:
        up = subprocess.run(evmonitor_cmd("up", "--detach"), env=env, capture_output=True, text=True, timeout=180)
        assert up.returncode == 0, up.stderr[-3000:]
        found = re.search(r"Flower: (\S+)\s+user (\S+) password (\S+)", up.stdout + up.stderr)
        assert found, up.stderr[-2000:]
        base, auth = found.group(1), (found.group(2), found.group(3))
        assert base == f"http://127.0.0.1:{port}" and len(auth[1]) >= 12
        wait_for(lambda: get(f"{base}/api/workers")[0] == 401, timeout_s=60, what="Flower from `evmonitor up`",
                 hint=str(tmp_path / "up-state" / "logs"))  # fmt: skip
        nodes = {"persist-1", "persist-2", "index", "maintenance"}  # EVMON_PERSIST_PROCESSES: 2 by default
        workers = wait_for_workers(base, auth, nodes, str(tmp_path / "up-state" / "logs"))
        assert {q["name"] for info in workers.values() for q in info["active_queues"]} == QUEUES
        again = subprocess.run(evmonitor_cmd("up", "--detach"), env=env, capture_output=True, text=True, timeout=180)
        assert f"password {auth[1]}" in again.stdout + again.stderr  # the same credentials on a second `up`
    finally:
        subprocess.run(evmonitor_cmd("down"), env=env, capture_output=True, timeout=180)
