"""The pipeline's edges to its stores: PostgreSQL (the persist sink), Elasticsearch (the index
sink) and Kafka (topics, producers, consumers).

Both stores implement one contract, `Sink` (`sink.py`): `write(events)` returns the events the
store refused for good, with its reason, and raises `TransientError` while the store is down.
Each module translates its driver's exceptions into `TransientError` or a refusal, once, in its
`translate_errors`.
"""

from evmonitor.storage.sink import Event, Rejected, Sink
from evmonitor.storage.kafka import ensure_topics, make_consumer, make_producer
from evmonitor.storage.postgres import PostgresStore, apply_schema, create_engine
from evmonitor.storage.search import SearchStore, make_client

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
