"""`evmonitor demo` as a new user runs it: exact every time, on a sandbox of its own."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import redis
import sqlalchemy as sa
from kafka import KafkaConsumer, TopicPartition

from evmonitor.names import EVENT_TOPICS
from evmonitor.stack.embedded import evmonitor_cmd
from tests.integration.conftest import ADMIN_URL

DEMO = ("demo", "--stations", "4", "--sessions", "24", "--seed", "3", "--bad-ratio", "0.05",
        "--duplicate-ratio", "0.05", "--reorder", "--timeout", "240")  # fmt: skip


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


def test_the_demo_is_exact_twice_and_never_touches_the_operators_data(pipeline, tmp_path):
    """Two demos with the same seed both print an exact table; the operator's stack is left as it was."""
    env = {**pipeline.env, "EVMON_STATE_DIR": str(tmp_path / "operator-state"),
           "EVMON_ADMIN_DATABASE_URL": ADMIN_URL, "COLUMNS": "200"}  # fmt: skip
    before = operator_state(pipeline)
    for attempt in (1, 2):
        done = run(*DEMO, env=env)
        assert done.returncode == 0, f"demo {attempt}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        assert "exact: every total matches" in done.stderr
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
