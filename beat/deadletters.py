"""Feed `charging-deadletters` (Kibana's "Ingest health") from the Kafka topic `ev.deadletter`.

Its own consumer group (`evmonitor-deadletter-indexer`) keeps its place; offsets are committed
only after the bulk request that holds the records succeeded, so a crash re-sends some records,
and `_id = "<topic>-<partition>-<offset>"` of the dead letter makes that harmless. A record that
is not a dead letter we understand is indexed anyway (reason `unreadable_deadletter`): this job
must never stall on one record.

The consumer is assigned every partition directly (no group membership, no rebalance wait):
beat runs one job at a time, and two overlapping runs would only write the same ids twice.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from datetime import datetime, timezone
from typing import Any

from kafka import OffsetAndMetadata, TopicPartition
from kafka.errors import KafkaError

from beat.indexes import DEADLETTERS_MAPPING, bulk, ensure_index
from evmonitor.errors import TransientError

__all__ = ["deadletter_document", "index_deadletters"]

PREVIEW_CHARS = 2000


def _ms_iso(settings: int | None) -> str | None:
    if settings is None or settings < 0:
        return None
    return datetime.fromtimestamp(settings / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def deadletter_document(
    value: bytes | None, *, topic: str, partition: int, offset: int, timestamp_ms: int | None = None
) -> tuple[str, dict[str, Any]]:
    """A dead-letter record as (`_id`, document). Pure; never raises."""
    doc_id = f"{topic}-{partition}-{offset}"
    doc: dict[str, Any] = {
        "deadletter_topic": topic,
        "deadletter_partition": partition,
        "deadletter_offset": offset,
        "received_at": _ms_iso(timestamp_ms),
    }
    try:
        record = json.loads(value or b"")
        if not isinstance(record, dict) or not isinstance(record.get("reason"), str):
            raise ValueError("not a dead-letter record (no reason)")
    except (ValueError, UnicodeDecodeError) as exc:
        raw = value or b""
        doc.update(reason="unreadable_deadletter", detail=str(exc)[:500], original_bytes=len(raw),
                   original_preview=raw[:PREVIEW_CHARS].decode("utf-8", "replace"))  # fmt: skip
        return doc_id, {k: v for k, v in doc.items() if v is not None}
    source = record.get("source") if isinstance(record.get("source"), dict) else {}
    doc.update(
        reason=record["reason"],
        detail=record.get("detail"),
        stage=record.get("stage"),
        source_topic=source.get("topic"),
        source_partition=source.get("partition"),
        source_offset=source.get("offset"),
        station_id=source.get("key"),
        event_id=record.get("event_id"),
    )
    if isinstance(record.get("received_at"), str):
        doc["received_at"] = record["received_at"]
    try:
        original = base64.b64decode(record.get("original_b64") or "", validate=True)
        doc["original_bytes"] = len(original)
        doc["original_preview"] = original[:PREVIEW_CHARS].decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        doc["original_preview"] = str(record.get("original_b64"))[:PREVIEW_CHARS]
    return doc_id, {k: v for k, v in doc.items() if v is not None}


def index_deadletters(
    consumer: Any, client: Any, *, topic: str, index: str, batch_max: int = 2000, budget_s: float = 30.0
) -> int:
    """Index what the group has not yet committed, up to the end offsets seen at the start.

    `consumer` is a KafkaConsumer created with the indexer's group_id and auto-commit off.
    Returns how many records were indexed. Raises `TransientError` if Kafka or Elasticsearch
    fails; the offsets of what was not indexed stay uncommitted.
    """
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            return 0
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        for tp in tps:
            committed = consumer.committed(tp)
            if committed is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
        ends = consumer.end_offsets(tps)
        ensure_index(client, index, DEADLETTERS_MAPPING)
        done = 0
        deadline = time.monotonic() + budget_s
        while any(consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
            polled = consumer.poll(timeout_ms=1000, max_records=batch_max)
            operations: list[dict[str, Any]] = []
            last: dict[TopicPartition, int] = {}
            for tp, records in polled.items():
                for record in records:
                    doc_id, doc = deadletter_document(record.value, topic=tp.topic, partition=tp.partition,
                                                      offset=record.offset, timestamp_ms=record.timestamp)  # fmt: skip
                    operations += [{"index": {"_index": index, "_id": doc_id}}, doc]
                    last[tp] = record.offset
            if not last:
                continue
            bulk(client, operations)
            consumer.commit({tp: OffsetAndMetadata(offset + 1, "", -1) for tp, offset in last.items()})
            done += len(operations) // 2
        return done
    except KafkaError as exc:
        raise TransientError(f"kafka (dead-letter indexer): {exc!r}") from exc
