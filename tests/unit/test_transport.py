"""Batch task payloads: one JSON string per batch, encoded once, read back exactly; the old list form still read."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from kombu.serialization import dumps as kombu_dumps
from kombu.serialization import loads as kombu_loads

from evmonitor.bridge.batching import Batcher
from evmonitor.bridge.wiring import CeleryPublisher
from evmonitor.contract import decode
from evmonitor.fold import TABLES, fold_columns
from evmonitor.names import QUEUE_BY_SINK, TASK_BY_SINK, SinkName
from evmonitor.storage import postgres
from evmonitor.storage.postgres import PostgresStore
from evmonitor.transport import decode_events, encode_events
from tests.factories import encode, make_event, session_events

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def wire_batch() -> list[dict]:
    """Normalised events as the bridge batches them: sessions, a boot with a non-ASCII name, statuses."""
    raw = [*session_events(start=NOW - timedelta(minutes=30), readings=[1200, 2500]),
           make_event("station_boot", at=NOW - timedelta(minutes=40), name="Berntsenhøgda Parkhaus ⚡"),
           make_event("station_status", at=NOW - timedelta(minutes=5), connector_id=1, status="Faulted",
                      error_code="GroundFailure")]  # fmt: skip
    return [decode(encode(e), received_at=NOW).to_wire() for e in raw]


class FakeApp:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list, str]] = []

    def send_task(self, name: str, args: list, queue: str) -> None:
        self.sent.append((name, args, queue))


def test_the_bridge_publishes_one_json_string_per_batch_encoded_once_for_every_sink():
    """Both sinks' tasks carry the batch id and the very same string, which decodes to the batch's events."""
    batcher, app = Batcher(max_events=100, max_age_s=1.0), FakeApp()
    events = wire_batch()
    for event in events:
        batcher.add(event, now=0.0)
    batch = batcher.take()
    publish = CeleryPublisher(app)
    for sink in (SinkName.PERSIST, SinkName.INDEX, SinkName.INDEX):  # the second index: a re-publish
        publish(sink, batch)
    assert [(name, queue) for name, _, queue in app.sent] == [
        (TASK_BY_SINK[s], QUEUE_BY_SINK[s]) for s in (SinkName.PERSIST, SinkName.INDEX, SinkName.INDEX)
    ]
    payloads = [args[1] for _, args, _ in app.sent]
    assert all(args[0] == batch.batch_id for _, args, _ in app.sent)
    assert isinstance(payloads[0], str) and all(p is payloads[0] for p in payloads)
    assert decode_events(payloads[0]) == events


def test_a_payload_crosses_kombu_json_and_comes_back_as_the_events():
    """The task body kombu writes holds one string; reading it back and decoding gives the events."""
    events = wire_batch()
    _, _, body = kombu_dumps([["batch-1", encode_events(events)], {}, {}], "json")
    (batch_id, payload), _, _ = kombu_loads(body, "application/json", "utf-8")
    assert batch_id == "batch-1" and decode_events(payload) == events


def test_a_task_of_an_older_bridge_carrying_a_list_of_dicts_is_taken_as_it_is():
    """Rolling upgrade: the list form (an older bridge, or a task waiting in Redis) still decodes."""
    events = wire_batch()
    assert decode_events(events) is events
    assert decode_events([]) == []


def test_what_orjson_refuses_goes_through_the_standard_library_both_ways():
    """Ints beyond 64 bits stay ints and a lone surrogate survives, both ways (a store refuses them, not us)."""
    for events in ([{"event_id": "a", "meter_wh": 2**70}], [{"event_id": "b", "meter_wh": -(2**63) - 1}],
                   [{"event_id": "c", "meter_wh": 2**64}], [{"event_id": "d", "info": "\ud800 x"}]):  # fmt: skip
        back = decode_events(encode_events(events))
        assert back == events and type(back[0].get("meter_wh", 0)) is int, events


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.lists(st.dictionaries(st.text(), json_values, max_size=6), max_size=8))
def test_any_json_batch_decodes_to_what_was_encoded(events):
    """decode_events(encode_events(x)) == x for any list of JSON objects."""
    assert decode_events(encode_events(events)) == events


def test_column_rows_writes_the_values_the_standard_library_encoder_wrote():
    """orjson's rows parse to exactly what `json` wrote before: ISO 8601 times, non-ASCII text, numbers."""
    columns = fold_columns(wire_batch())
    rows = PostgresStore.column_rows(columns)  # completes `columns` in place
    assert set(rows) == {t.name for t in TABLES if columns.table(t)} and "charging_stations" in rows
    for table in TABLES:
        if table.name in rows:
            stdlib = postgres._JSON.encode(list(columns.table(table).values()))
            assert json.loads(rows[table.name]) == json.loads(stdlib), table.name
    assert "+00:00" in rows["charging_stations"] and "Berntsenhøgda" in rows["charging_stations"]


def test_a_row_orjson_cannot_write_is_written_by_the_standard_library():
    """A number beyond 64 bits in a row still becomes JSON (PostgreSQL then refuses the batch's poison)."""
    text = postgres._rows_json([{"id": "s", "meter_max_wh": 2**70, "price": 0.4,
                                 "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)}])  # fmt: skip
    assert json.loads(text) == [{"id": "s", "meter_max_wh": 2**70, "price": 0.4, "at": "2026-01-02T03:04:05+00:00"}]
