"""`evmonitor simulate --wait` and the operator's commands on a real pipeline, as an operator runs them."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from evmonitor.names import Queue, SinkName
from evmonitor.stack.embedded import evmonitor_cmd
from tests.integration.conftest import ADMIN_URL, Pipeline


@pytest.fixture
def pipeline(pg_admin, tmp_path):
    """A sandbox whose bridge waits for PostgreSQL only: one worker to start, not two."""
    with Pipeline(tmp_path, admin_url=ADMIN_URL, sinks=[SinkName.PERSIST]) as p:
        yield p


def run(pipeline, *args, timeout=180):
    return subprocess.run(evmonitor_cmd(*args), env={**pipeline.env, "COLUMNS": "200"}, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def test_simulate_says_what_it_sent_where_and_waits_until_the_pipeline_has_processed_it(pipeline):
    """Without a bridge `--wait` times out (exit 1, one line); with one it returns once PostgreSQL holds the run."""
    bootstrap = pipeline.settings.kafka_bootstrap
    stalled = run(pipeline, "simulate", "--stations", "2", "--sessions", "2", "--seed", "5", "--wait", "--wait-timeout", "2")
    assert stalled.returncode == 1, stalled.stderr
    assert "error: timed out after 2 s: consumer group evmonitor-bridge has not committed" in stalled.stderr
    assert "Traceback" not in stalled.stderr

    pipeline.start_workers((Queue.PERSIST,))
    pipeline.start_bridge()
    done = run(pipeline, "simulate", "--stations", "3", "--sessions", "6", "--seed", "5", "--wait", "--wait-timeout", "120")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == ""  # diagnostics go to stderr
    err = " ".join(done.stderr.split())
    sent = re.search(rf"sent ([\d,]+) messages of run (\S+) to Kafka at {re.escape(bootstrap)} \(EVMON_KAFKA_BOOTSTRAP\): "
                     r"(.*?) committed:", err)  # fmt: skip
    assert sent, err
    per_topic = dict(re.findall(r"(ev\.[\w.]+) ([\d,]+)", sent.group(3)))
    assert set(per_topic) == {"ev.station.status", "ev.session.started", "ev.session.progress", "ev.session.completed"}
    assert sum(int(n.replace(",", "")) for n in per_topic.values()) == int(sent.group(1).replace(",", ""))
    assert f"processed: PostgreSQL holds all 6 sessions of run {sent.group(2)}" in err

    # the operator's commands read it back: JSON on stdout; the stalled run's 2 sessions arrive too
    deadline = time.monotonic() + 60
    while len(sessions := json.loads(run(pipeline, "sessions", "--json", "--limit", "100").stdout)) < 8:
        assert time.monotonic() < deadline, f"{len(sessions)} sessions; {pipeline.logs_hint()}"
    assert len(sessions) == 8
    stations = json.loads(run(pipeline, "stations", "--json").stdout)
    assert {s["station_id"] for s in sessions} <= {s["id"] for s in stations} and len(stations) >= 3
