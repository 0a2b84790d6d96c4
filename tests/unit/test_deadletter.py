"""The dead-letter record: its bytes are exactly `json.dumps` of the documented record."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from evmonitor.deadletter import Source, deadletter_record, parse_record
from evmonitor.errors import Reason
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


def test_a_large_original_round_trips():
    original = bytes(range(256)) * 1200  # ~300 KB, as a `too_large` record's
    at = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=5)
    value = deadletter_record(reason=Reason.TOO_LARGE, detail="big", original=original, source=Source("t", 1, 2, b"k"),
                              received_at=at, event_id="e")  # fmt: skip
    record = parse_record(value)
    assert record["original"] == original and record["event_id"] == "e" and record["received_at"].endswith(".000005Z")
