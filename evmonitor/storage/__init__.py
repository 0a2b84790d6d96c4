"""The pipeline's edges to its stores: PostgreSQL (the persist sink), Elasticsearch (the index
sink) and Kafka (topics, producers, consumers). Each module translates its driver's exceptions
into `TransientError` or a refusal, once.
"""

from evmonitor.storage.kafka import ensure_topics, make_consumer, make_producer
from evmonitor.storage.postgres import PostgresStore, apply_schema, create_engine
from evmonitor.storage.search import SearchStore, make_client

__all__ = [
    "PostgresStore",
    "SearchStore",
    "apply_schema",
    "create_engine",
    "ensure_topics",
    "make_client",
    "make_consumer",
    "make_producer",
]
