"""`evmonitor demo` as a new user runs it: exact every time, on a sandbox of its own."""

from __future__ import annotations

import json
import re
import shlex
from collections import defaultdict
import subprocess
from pathlib import Path

import redis
import sqlalchemy as sa
from kafka import KafkaConsumer, TopicPartition

from evmonitor.names import EVENT_TOPICS
from evmonitor.stack.embedded import evmonitor_cmd
from tests.integration.conftest import ADMIN_URL

# 12 stations, seed 24: a connector fault, a whole-station maintenance window and a station that
# falls silent early enough to be offline at the window's end, whatever the time of day
DEMO = ("demo", "--stations", "12", "--sessions", "24", "--seed", "24", "--bad-ratio", "0.05",
        "--duplicate-ratio", "0.05", "--reorder", "--timeout", "240")  # fmt: skip
UPTIME_ROWS = ("ports (uptime)", "ports exact: outages, minutes, uptime %", "port outages",
               "outage minutes (all ports)", "uptime % (all ports)")  # fmt: skip


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(evmonitor_cmd(*args), env=env, capture_output=True, text=True, timeout=420)


def records_in_event_topics(pipeline) -> int:
    """Every record in the operator's event topics, read from the beginning."""
    consumer = KafkaConsumer(bootstrap_servers=pipeline.settings.kafka_bootstrap, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest")  # fmt: skip
    try:
        partitions = [TopicPartition(t, p) for t in EVENT_TOPICS for p in consumer.partitions_for_topic(t) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        count = 0
        while batch := consumer.poll(timeout_ms=2000):
            count += sum(len(records) for records in batch.values())
        return count
    finally:
        consumer.close()


def operator_state(pipeline) -> dict[str, object]:
    """What a demo must never change: the operator's rows, topics, queues and indices."""
    broker = redis.Redis.from_url(pipeline.settings.broker_url)
    return {
        "sessions": pipeline.sql("SELECT count(*) AS n FROM charging_sessions")[0].n,
        "stations": pipeline.sql("SELECT count(*) AS n FROM charging_stations")[0].n,
        "batches": pipeline.sql("SELECT count(*) AS n FROM ingest_batches")[0].n,
        "redis keys": sorted(broker.keys("*")),
        "indices": sorted(i["index"] for i in pipeline.http("GET", "/_cat/indices?format=json")),
        "records": records_in_event_topics(pipeline),
    }


def table_row(output: str, metric: str) -> list[str]:
    """The cells of one row of the reconciliation table, after its metric."""
    line = next(line for line in output.splitlines() if f" {metric} " in line)
    return [cell.strip() for cell in line.split("│")[2:-1]]


def test_the_demo_is_exact_twice_and_never_touches_the_operators_data(pipeline, tmp_path):
    """Two demos with the same seed both print an exact table, uptime rows included; the operator's stack is left as it was."""
    env = {**pipeline.env, "EVMON_STATE_DIR": str(tmp_path / "operator-state"),
           "EVMON_ADMIN_DATABASE_URL": ADMIN_URL, "COLUMNS": "200"}  # fmt: skip
    before = operator_state(pipeline)
    for attempt in (1, 2):
        truth_file = tmp_path / f"truth-{attempt}.json"
        done = run(*DEMO, "--ground-truth", str(truth_file), env=env)
        assert done.returncode == 0, f"demo {attempt}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        assert "exact: every total matches" in done.stderr
        downtime = json.loads(truth_file.read_text())["downtime"]
        by_station = defaultdict(list)
        for key, port in downtime["ports"].items():
            by_station[key.rpartition("/")[0]].append(port["outages"])
        # every kind of outage is there to be reconciled: a fault on one port of a station, a
        # maintenance window on every port, a silent station whose outage is still open
        assert any(any(ports) and not all(ports) for ports in by_station.values())
        assert any(all(ports) and all(end for spans in ports for _, end in spans) for ports in by_station.values())
        assert any(end is None for ports in by_station.values() for spans in ports for _, end in spans)
        for metric in UPTIME_ROWS:
            expected, ledger, *_, match = table_row(done.stdout, metric)
            assert (ledger, match) == (expected, "yes"), metric
        assert table_row(done.stdout, "ports exact: outages, minutes, uptime %")[0] == str(len(downtime["ports"]))
        assert table_row(done.stdout, "outage minutes (all ports)")[0] == downtime["outage_min"] != "0.000"
    assert operator_state(pipeline) == before


def test_a_kept_demo_says_how_to_reach_it_and_is_removed_on_request(pipeline, pg_admin, tmp_path):
    """--keep leaves the sandbox running with an owner-only env file; --remove stops it and drops its database."""
    env = {**pipeline.env, "EVMON_STATE_DIR": str(tmp_path / "operator-state"),
           "EVMON_ADMIN_DATABASE_URL": ADMIN_URL, "COLUMNS": "200"}  # fmt: skip
    done = run("demo", "--stations", "2", "--sessions", "6", "--seed", "5", "--keep", env=env)
    said = done.stderr.replace("\n", " ")
    assert done.returncode == 0, said[-5000:]
    workdir = Path(re.search(r"evmonitor demo --remove (\S+)", said).group(1))
    database = re.search(r"database\s+(evmon_sandbox_\w+)", said).group(1)
    env_file = workdir / "sandbox.env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert (workdir / "sandbox.json").stat().st_mode & 0o777 == 0o600  # its admin URL may hold a password
    assert "reconciliation" in done.stdout and "reconciliation" not in done.stderr  # the table on stdout
    box = {name: shlex.split(value)[0] if value else "" for name, value in
           (line.split("=", 1) for line in env_file.read_text().splitlines())}  # fmt: skip
    engine = sa.create_engine(box["EVMON_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM charging_sessions")).scalar() == 6
    finally:
        engine.dispose()

    removed = run("demo", "--remove", str(workdir), env=env)
    assert removed.returncode == 0, removed.stderr[-3000:]
    assert not workdir.exists()
    with pg_admin.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM pg_database WHERE datname = :d"), {"d": database}).scalar() == 0
