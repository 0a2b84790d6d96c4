"""Integration fixtures: real services over real connections, isolated per test.

Kafka (tansu), the Elasticsearch API (osmem) and Redis are started fresh for each test on free
ports (they are in-memory and start in well under a second), so no test sees another's topics,
queues or documents. PostgreSQL is found at EVMON_TEST_ADMIN_DATABASE_URL (default: the local
server, user postgres) and each test gets a fresh database. Celery workers and the bridge run
as real subprocesses, exactly as `evmonitor up` runs them.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from evmonitor.config import Settings
from evmonitor.stack.embedded import child_env, evmonitor_cmd, init_pipeline, start_kafka, start_redis, start_search
from evmonitor.stack.procs import Proc, free_port, spawn, stop, wait_for
from evmonitor.storage.kafka import make_producer
from evmonitor.storage.search import SearchStore

ADMIN_URL = os.environ.get("EVMON_TEST_ADMIN_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sa.Engine]:
    engine = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        wait_for(lambda: engine.connect().close() is None, timeout_s=20, what=f"PostgreSQL at {ADMIN_URL}",
                 hint="Start it (Debian: pg_ctlcluster 15 main start) or set EVMON_TEST_ADMIN_DATABASE_URL "
                      "to a superuser URL of a running server.")  # fmt: skip
    except Exception as exc:
        pytest.fail(str(exc), pytrace=False)
    yield engine
    engine.dispose()


@dataclass
class Pipeline:
    """A running evmonitor on fresh services; helpers to feed it and look at the results."""

    settings: Settings
    tmp: Path
    services: dict[str, Proc] = field(default_factory=dict)
    processes: dict[str, Proc] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return child_env(self.settings)

    # --- processes --------------------------------------------------------------------------

    def start(self, name: str, *args: str) -> Proc:
        proc = spawn(name, evmonitor_cmd(*args), log_dir=self.tmp / "logs", env=self.env)
        self.processes[name] = proc
        return proc

    def start_worker(self, queue: str, name: str | None = None, concurrency: int = 1) -> Proc:
        name = name or f"worker-{queue}"
        return self.start(name, "worker", "-Q", queue, "-c", str(concurrency), "-n", f"{name}@%h")

    def start_workers(self) -> None:
        self.start_worker("persist")
        self.start_worker("index")
        self.wait_workers(("persist", "index"))

    def start_bridge(self) -> Proc:
        return self.start("bridge", "bridge")

    def wait_workers(self, queues: tuple[str, ...], timeout_s: float = 60) -> None:
        from workers.app import create_app

        app = create_app(self.settings)

        def ready() -> bool:
            replies = app.control.inspect(timeout=0.5).active_queues() or {}
            return all(q in {x["name"] for qs in replies.values() for x in qs} for q in queues)

        wait_for(ready, timeout_s=timeout_s, what=f"workers for {queues}", hint=self.logs_hint())

    def stop(self, name: str, **kwargs: Any) -> bool:
        return stop(self.processes.pop(name), **kwargs)

    def logs_hint(self) -> str:
        return f"Logs: {self.tmp / 'logs'}"

    def log(self, name: str) -> str:
        path = self.tmp / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- feeding ----------------------------------------------------------------------------

    def publish(self, messages: list[tuple[str, bytes, bytes]]) -> dict[tuple[str, int], int]:
        """Send (topic, key, value) in order; return per partition the offset one past the last."""
        producer = make_producer(self.settings.kafka_bootstrap)
        futures = [producer.send(topic, key=key, value=value) for topic, key, value in messages]
        producer.flush()
        ends: dict[tuple[str, int], int] = {}
        for future in futures:
            meta = future.get(timeout=10)
            key = (meta.topic, meta.partition)
            ends[key] = max(ends.get(key, 0), meta.offset + 1)
        producer.close()
        return ends

    def wait_drained(self, targets: dict[tuple[str, int], int], timeout_s: float = 120) -> None:
        from evmonitor.reconcile import wait_drained

        if not wait_drained(self.settings, targets, timeout_s=timeout_s):
            raise AssertionError(f"pipeline did not drain in {timeout_s}s. {self.logs_hint()}\n{self.log('bridge')[-3000:]}")

    # --- looking ----------------------------------------------------------------------------

    def sql(self, query: str, **params: Any) -> list[sa.Row]:
        engine = sa.create_engine(self.settings.sqlalchemy_url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(sa.text(query), params))
        finally:
            engine.dispose()

    def search(self) -> SearchStore:
        return SearchStore.connect(self.settings.elasticsearch_url, self.settings.index_prefix)

    def http(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.settings.elasticsearch_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def deadletters(self) -> list[dict[str, Any]]:
        from kafka import KafkaConsumer, TopicPartition

        from evmonitor.deadletter import parse_record

        consumer = KafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap, enable_auto_commit=False)
        try:
            tps = [TopicPartition(self.settings.deadletter_topic, p)
                   for p in consumer.partitions_for_topic(self.settings.deadletter_topic) or ()]  # fmt: skip
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            out: list[dict[str, Any]] = []
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=300).values():
                    out.extend(parse_record(r.value) for r in records)
                if all(consumer.highwater(tp) is not None and consumer.position(tp) >= consumer.highwater(tp) for tp in tps):
                    break
            return out
        finally:
            consumer.close(autocommit=False)


@pytest.fixture
def pipeline(pg_admin: sa.Engine, tmp_path: Path) -> Iterator[Pipeline]:
    """Fresh Kafka, Elasticsearch API, Redis and database; schema, topics and template applied.

    Workers and the bridge are not started: tests start what they need (`start_workers`,
    `start_bridge`) so they can also kill and restart them.
    """
    logs = tmp_path / "logs"
    db = f"evmon_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{db}"')
    services: dict[str, Proc] = {}
    try:
        kafka_port, es_port, redis_port = free_port(), free_port(), free_port()
        services["kafka"] = start_kafka(kafka_port, logs)
        services["elasticsearch"] = start_search(es_port, logs)
        services["redis"] = start_redis(redis_port, logs)
        admin = sa.engine.make_url(ADMIN_URL)
        settings = Settings(
            _env_file=None,
            kafka_bootstrap=f"127.0.0.1:{kafka_port}",
            elasticsearch_url=f"http://127.0.0.1:{es_port}",
            broker_url=f"redis://127.0.0.1:{redis_port}/0",
            database_url=admin.set(database=db).render_as_string(hide_password=False),
            state_dir=tmp_path / "state",
            topic_partitions=3,
            batch_max_ms=100,
            commit_interval_s=0.5,
            republish_after_s=20,
        )
        init_pipeline(settings)
        p = Pipeline(settings=settings, tmp=tmp_path, services=services)
        yield p
        for name in list(p.processes):
            p.stop(name, timeout_s=15)
    finally:
        for proc in services.values():
            stop(proc, timeout_s=5)
        with pg_admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
