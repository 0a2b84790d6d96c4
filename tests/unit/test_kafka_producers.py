"""How the Kafka producers are configured (no broker: KafkaProducer is replaced)."""

from __future__ import annotations

from evmonitor.config import Settings
from evmonitor.storage import kafka as kafka_store


def test_the_dead_letter_producer_batches_by_deadletter_batch_bytes(monkeypatch):
    """A `too_large` dead letter (~333 KB) must fit a batch with others; the other settings are
    `make_producer`'s (acks=all: a dead letter counts once Kafka has it)."""
    made = []
    monkeypatch.setattr(kafka_store, "KafkaProducer", lambda **config: made.append(config) or config)
    kafka_store.make_deadletter_producer(Settings(kafka_bootstrap="k:9092"))
    kafka_store.make_deadletter_producer(Settings(kafka_bootstrap="k:9092", deadletter_batch_bytes=512 * 1024))
    monkeypatch.setenv("EVMON_DEADLETTER_BATCH_BYTES", "65536")
    kafka_store.make_deadletter_producer(Settings(kafka_bootstrap="k:9092"), linger_ms=1)
    assert [c["batch_size"] for c in made] == [1024 * 1024, 512 * 1024, 65536]
    assert all(c["acks"] == "all" and c["bootstrap_servers"] == "k:9092" for c in made)
    assert made[0]["batch_size"] > 350 * 1024 and made[2]["linger_ms"] == 1
