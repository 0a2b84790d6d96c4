"""Dead-letter records become documents of charging-deadletters, whatever their shape."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from beat.deadletters import deadletter_document
from evmonitor.deadletter import Source, deadletter_record
from evmonitor.errors import Reason


def test_a_dead_letter_keeps_its_reason_source_and_time_and_is_keyed_by_its_position():
    """_id is topic-partition-offset of the dead letter; fields are the ones Kibana reads."""
    value = deadletter_record(
        reason=Reason.MISSING_FIELD, detail="meter_wh: Field required", original=b'{"event_type":"session_progress"}',
        source=Source("ev.session.progress", 2, 41, b"DE-BER-0001"), stage="bridge",
        received_at=datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc), event_id="e-1",
    )  # fmt: skip
    doc_id, doc = deadletter_document(value, topic="ev.deadletter", partition=1, offset=7, timestamp_ms=0)
    assert doc_id == "ev.deadletter-1-7"
    assert doc["reason"] == "missing_field" and doc["stage"] == "bridge" and doc["event_id"] == "e-1"
    assert (doc["source_topic"], doc["source_partition"], doc["source_offset"]) == ("ev.session.progress", 2, 41)
    assert doc["station_id"] == "DE-BER-0001"
    assert doc["received_at"] == "2026-11-23T10:00:00Z"
    assert doc["original_preview"] == '{"event_type":"session_progress"}' and doc["original_bytes"] == 33


def test_a_sink_dead_letter_without_source_position_has_no_null_fields():
    """Records from the persist/index stage carry no offsets; the document simply omits them."""
    value = deadletter_record(reason=Reason.SINK_REJECTED, detail="x", original=b"{}", source=Source(key=b"ST"),
                              received_at=datetime(2026, 11, 23, tzinfo=timezone.utc), stage="persist")  # fmt: skip
    _, doc = deadletter_document(value, topic="ev.deadletter", partition=0, offset=0)
    assert "source_topic" not in doc and "source_offset" not in doc
    assert all(v is not None for v in doc.values())


def test_garbage_on_the_topic_is_indexed_as_unreadable_instead_of_stalling():
    """Bytes that are no dead letter still become a document, with the Kafka timestamp."""
    for value in (b"\xff\xfe not json", b"[1, 2]", json.dumps({"no": "reason"}).encode(), None):
        doc_id, doc = deadletter_document(value, topic="ev.deadletter", partition=0, offset=3,
                                          timestamp_ms=1_700_000_000_000)  # fmt: skip
        assert doc_id == "ev.deadletter-0-3"
        assert doc["reason"] == "unreadable_deadletter"
        assert doc["received_at"] == "2023-11-14T22:13:20.000Z"
