"""The dead-letter record: its bytes are exactly `json.dumps` of the documented record."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evmonitor.deadletter import DeadLetter, DeadLetters, Source, deadletter_record, parse_record
from evmonitor.errors import Reason, TransientError
from evmonitor.names import Stage


def _as_documented(*, reason, detail, original, source, received_at, stage, event_id):
    record = {
        "reason": str(reason),
        "detail": detail,
        "stage": stage,
        "source": {"topic": source.topic, "partition": source.partition, "offset": source.offset,
                   "key": source.key.decode("utf-8", "replace") if source.key is not None else None},
        "received_at": received_at.isoformat().replace("+00:00", "Z"),
        "original_b64": base64.b64encode(original).decode("ascii"),
    }  # fmt: skip
    if event_id is not None:
        record["event_id"] = event_id
    return json.dumps(record, separators=(",", ":")).encode()


@given(
    reason=st.sampled_from(list(Reason)),
    detail=st.text(),
    original=st.binary(max_size=2000),
    source=st.builds(Source, st.none() | st.text(max_size=20), st.none() | st.integers(0, 99),
                     st.none() | st.integers(0, 2**62), st.none() | st.binary(max_size=20)),  # fmt: skip
    received_at=st.datetimes(timezones=st.just(timezone.utc)),
    stage=st.sampled_from(list(Stage)),
    event_id=st.none() | st.text(max_size=40),
)
def test_the_record_is_byte_for_byte_the_documented_json(reason, detail, original, source, received_at, stage,
                                                         event_id):  # fmt: skip
    kwargs = dict(reason=reason, detail=detail, original=original, source=source, received_at=received_at,
                  stage=stage, event_id=event_id)  # fmt: skip
    value = deadletter_record(**kwargs)
    assert value == _as_documented(**kwargs)
    assert parse_record(value)["original"] == original


@pytest.mark.parametrize("detail, key, offset, event_id", [
    ("plain", b"ST-1", 7, None),
    ("DEL \x7f and NUL \x00", b"ST-1", 7, "e\x7f"),
    ("caf\u00e9 \u2028", b"\xff\xfe", 7, "\u00e9"),
    ("a lone surrogate \ud800", b"ST-1", 7, "\udfff"),
    ("plain", b"ST-1", 2**70, None),  # beyond what orjson encodes
])  # fmt: skip
def test_what_orjson_writes_otherwise_or_refuses_takes_the_standard_encoder(detail, key, offset, event_id):
    kwargs = dict(reason=Reason.INVALID_JSON, detail=detail, original=b"{x", source=Source("t", 0, offset, key),
                  received_at=datetime(2026, 1, 1, tzinfo=timezone.utc), stage=Stage.BRIDGE, event_id=event_id)  # fmt: skip
    assert deadletter_record(**kwargs) == _as_documented(**kwargs)


def test_a_large_original_round_trips():
    original = bytes(range(256)) * 1200  # ~300 KB, as a `too_large` record's
    at = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=5)
    value = deadletter_record(reason=Reason.TOO_LARGE, detail="big", original=original, source=Source("t", 1, 2, b"k"),
                              received_at=at, event_id="e")  # fmt: skip
    record = parse_record(value)
    assert record["original"] == original and record["event_id"] == "e" and record["received_at"].endswith(".000005Z")


# --- DeadLetters: what is kept until Kafka acknowledges it --------------------------------------


class _Future:
    """A kafka-python record future as `DeadLetters` sees it: done later, by the producer."""

    def __init__(self):
        self.is_done, self.exception = False, None

    def succeeded(self):
        return self.is_done and self.exception is None


class _Producer:
    def __init__(self):
        self.sent: list[tuple[bytes | None, bytes]] = []
        self.futures: list[_Future] = []
        self.flushes = 0
        self.refuse_at_flush: set[int] = set()  # indices of `sent` whose futures fail at flush

    def send(self, topic, key=None, value=None, headers=None):
        assert type(value) is bytes
        self.sent.append((key, value))
        self.futures.append(_Future())
        return self.futures[-1]

    def ack(self, *indices):
        for i in indices:
            self.futures[i].is_done = True

    def flush(self, timeout=None):
        self.flushes += 1
        for i, future in enumerate(self.futures):
            if not future.is_done:
                future.is_done = True
                future.exception = RuntimeError("refused") if i in self.refuse_at_flush else None


def _letter(offset: int) -> DeadLetter:
    return DeadLetter(Reason.TOO_LARGE, "big", bytes([offset]) * 70_000, Source("ev.t", 0, offset, b"ST-1"),
                      datetime(2026, 1, 1, tzinfo=timezone.utc))  # fmt: skip


def test_a_dead_letter_is_encoded_when_dispatched_as_deadletter_record_encodes_it():
    producer = _Producer()
    dlq = DeadLetters(producer, "ev.deadletter")
    letter = _letter(3)
    dlq.send(letter, reason=letter.reason, key=b"ST-1")
    assert producer.sent == []
    dlq.dispatch()
    expected = deadletter_record(reason=Reason.TOO_LARGE, detail="big", original=letter.original,
                                 source=letter.source, received_at=letter.received_at)  # fmt: skip
    assert producer.sent == [(b"ST-1", expected)]
    assert parse_record(expected)["source"]["offset"] == 3


def test_acknowledged_dead_letters_are_forgotten_at_the_next_dispatch_and_the_rest_kept_for_flush():
    """Kafka acknowledged the first two: the next poll's dispatch drops them (their futures die
    young); the third, not acknowledged, is kept, and so is all behind it."""
    producer = _Producer()
    dlq = DeadLetters(producer, "ev.deadletter")
    for offset in range(4):
        dlq.send(_letter(offset), reason=Reason.TOO_LARGE, key=b"ST-1")
    dlq.dispatch()
    assert dlq.pending == 4
    producer.ack(0, 1, 3)
    dlq.dispatch()
    assert dlq.pending == 2  # the head up to the first not acknowledged
    dlq.flush()
    assert producer.flushes == 1 and dlq.pending == 0


def test_a_dead_letter_kafka_refused_is_encoded_and_sent_again_and_flush_raises_until_it_is_taken():
    producer = _Producer()
    producer.refuse_at_flush = {1}
    dlq = DeadLetters(producer, "ev.deadletter")
    for offset in range(3):
        dlq.send(_letter(offset), reason=Reason.TOO_LARGE, key=b"ST-1")
    dlq.dispatch()
    producer.ack(0)
    dlq.dispatch()  # forgets offset 0; offset 1 is not done yet, so 1 and 2 stay
    with pytest.raises(TransientError, match="1 records"):
        dlq.flush()
    assert [parse_record(v)["source"]["offset"] for _, v in producer.sent] == [0, 1, 2, 1]
    assert producer.sent[3] == producer.sent[1]  # the same bytes again
    assert dlq.pending == 1
    dlq.flush()
    assert producer.flushes == 2 and dlq.pending == 0


def test_flush_waits_on_the_producer_even_when_every_record_was_seen_acknowledged():
    """Dispatch may forget every record before the commit: the commit's flush still asks the
    producer, once, and not again while nothing new was sent."""
    producer = _Producer()
    dlq = DeadLetters(producer, "ev.deadletter")
    dlq.send(_letter(0), reason=Reason.TOO_LARGE, key=b"ST-1")
    dlq.dispatch()
    producer.ack(0)
    dlq.dispatch()
    assert dlq.pending == 0
    dlq.flush()
    dlq.flush()
    assert producer.flushes == 1
