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
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from evmonitor.stack.procs import wait_for
from evmonitor.stack.sandbox import DEFAULT_ADMIN_URL, Sandbox
from evmonitor.storage.kafka import make_producer
from evmonitor.storage.search import SearchStore

ADMIN_URL = os.environ.get("EVMON_TEST_ADMIN_DATABASE_URL", DEFAULT_ADMIN_URL)

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


class Pipeline(Sandbox):
    """A sandboxed evmonitor (see evmonitor.stack.sandbox) plus helpers to feed it and look at it."""

    def logs_hint(self) -> str:
        return f"Logs: {self.logs}"

    # --- feeding ----------------------------------------------------------------------------

    def publish(self, messages: list[tuple[str, bytes, bytes]]) -> dict[tuple[str, int], int]:
        """Send (topic, key, value) in order; return per partition the offset one past the last."""
        from evmonitor.stack.simulate import RecordingProducer

        producer = RecordingProducer(make_producer(self.settings.kafka_bootstrap))
        for topic, key, value in messages:
            producer.send(topic, key=key, value=value)
        producer.flush()
        producer.close()
        return producer.sent.targets()

    def wait_drained(self, targets: dict[tuple[str, int], int], timeout_s: float = 120) -> None:
        from evmonitor.stack.reconcile import wait_drained

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
        from evmonitor.stack.reconcile import read_all_deadletters

        return read_all_deadletters(self.settings, timeout_s=15)


@pytest.fixture
def pipeline(pg_admin: sa.Engine, tmp_path: Path) -> Iterator[Pipeline]:
    """Fresh Kafka, Elasticsearch API, Redis and database; schema, topics and template applied.

    Workers and the bridge are not started: tests start what they need (`start_workers`,
    `start_bridge`) so they can also kill and restart them.
    """
    with Pipeline(tmp_path, admin_url=ADMIN_URL) as p:
        yield p


@pytest.fixture
def proxied_pipeline(pg_admin: sa.Engine, tmp_path: Path) -> Iterator[Pipeline]:
    """Like `pipeline`, with PostgreSQL and the search server behind cut-able fault proxies."""
    with Pipeline(tmp_path, admin_url=ADMIN_URL, proxied=True) as p:
        yield p
