"""The pipeline's edges to its stores: PostgreSQL (the persist sink), Elasticsearch (the index
sink) and Kafka (topics, producers, consumers).

Both stores implement one contract, `Sink` (`sink.py`): `write(events)` returns the events the
store refused for good, with its reason, and raises `TransientError` while the store is down.
Each module translates its driver's exceptions into `TransientError` or a refusal, once, in its
`translate_errors`.

The names below are imported on first use (PEP 562), not with the package: a process that needs
one store does not pay for the others' drivers (the bridge never loads the Elasticsearch client:
0.1 CPU-s less at each start, issue 15).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evmonitor.lazy import lazy_names

if TYPE_CHECKING:
    from evmonitor.storage.kafka import ensure_topics, make_consumer, make_producer
    from evmonitor.storage.postgres import PostgresStore, apply_schema, create_engine
    from evmonitor.storage.search import SearchStore, make_client
    from evmonitor.storage.sink import Event, Rejected, Sink

_LAZY = {
    "Event": "sink",
    "Rejected": "sink",
    "Sink": "sink",
    "ensure_topics": "kafka",
    "make_consumer": "kafka",
    "make_producer": "kafka",
    "PostgresStore": "postgres",
    "apply_schema": "postgres",
    "create_engine": "postgres",
    "SearchStore": "search",
    "make_client": "search",
}

__all__ = [
    "Event",
    "PostgresStore",
    "Rejected",
    "SearchStore",
    "Sink",
    "apply_schema",
    "create_engine",
    "ensure_topics",
    "make_client",
    "make_consumer",
    "make_producer",
]


__getattr__ = lazy_names(__name__, _LAZY, globals())
