"""All process-global state of evmonitor lives here, and only here.

A process (a worker's pool child, beat's maintenance worker, a test) opens its connections once,
lazily, on first use: after a prefork pool forked, never before, since sockets must not be
shared across a fork. They are kept per `Settings` object, so two apps with different settings in
one process (tests do this) never share a connection. Every task reaches them the same way:
`connections(self.app.conf.evmonitor_settings)`.

Nothing else in evmonitor keeps mutable module-level state (the Celery app that
`celery -A evmonitor.app` looks up is built on first access and kept in `evmonitor.app`).
"""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy as sa

from evmonitor.config import Settings
from evmonitor.deadletter import DeadLetters
from evmonitor.storage.kafka import make_deadletter_producer
from evmonitor.storage.postgres import PostgresStore, create_engine
from evmonitor.storage.search import SearchStore, make_client
from evmonitor.transport import Payloads

__all__ = ["Connections", "close_all", "connections"]


class Connections:
    """What tasks talk to, each opened on first use. Thread-safe; `close()` releases them all."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._open: dict[str, Any] = {}

    def _get(self, name: str, factory: Any) -> Any:
        with self._lock:
            if name not in self._open:
                self._open[name] = factory()
            return self._open[name]

    @property
    def engine(self) -> sa.Engine:
        """A pooled engine for maintenance queries."""
        return self._get("engine", lambda: create_engine(self.settings.sqlalchemy_url))

    @property
    def postgres(self) -> PostgresStore:
        """The persist sink.

        Without pre-ping: it cost a round trip and ~8% of a persist worker's CPU per batch. A
        connection the server dropped (a restart) fails its batch once, with `TransientError`:
        the task retries, and the pool has by then discarded every connection older than the
        failure, so the retry gets a new one (tests/integration/test_delivery.py).
        """
        return self._get("postgres", lambda: PostgresStore.connect(self.settings.sqlalchemy_url, pool_pre_ping=False))

    @property
    def search_client(self) -> Any:
        """An Elasticsearch client for maintenance indices."""
        return self._get("search_client", lambda: make_client(self.settings.elasticsearch_url))

    @property
    def search(self) -> SearchStore:
        """The index sink."""
        return self._get(
            "search", lambda: SearchStore.connect(self.settings.elasticsearch_url, self.settings.index_prefix)
        )

    @property
    def deadletters(self) -> DeadLetters:
        """The dead-letter producer for events a store refused."""
        return self._get(
            "deadletters",
            lambda: DeadLetters(make_deadletter_producer(self.settings), self.settings.deadletter_topic),
        )

    @property
    def payloads(self) -> Payloads:
        """Where batch tasks' events wait in Redis (the broker's)."""
        return self._get("payloads", lambda: Payloads.connect(self.settings))

    def close(self) -> None:
        with self._lock:
            opened, self._open = self._open, {}
        for name, thing in opened.items():
            _CLOSE[name](thing)


_CLOSE = {
    "engine": lambda engine: engine.dispose(),
    "postgres": lambda store: store.engine.dispose(),
    "search_client": lambda client: client.close(),
    "search": lambda store: store.client.close(),
    "deadletters": lambda dlq: dlq.producer.close(timeout=5),
    "payloads": lambda payloads: payloads.close(),
}

_by_settings: dict[int, tuple[Settings, Connections]] = {}
_registry_lock = threading.Lock()


def connections(settings: Settings) -> Connections:
    """This process's connections for `settings` (one set per Settings object)."""
    with _registry_lock:
        entry = _by_settings.get(id(settings))
        if entry is None or entry[0] is not settings:
            entry = _by_settings[id(settings)] = (settings, Connections(settings))
        return entry[1]


def close_all() -> None:
    """Close every connection this process opened (tests, and processes that are shutting down)."""
    with _registry_lock:
        entries = list(_by_settings.values())
        _by_settings.clear()
    for _settings, conns in entries:
        conns.close()
