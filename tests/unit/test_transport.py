"""Batch task payloads: one JSON string per batch, encoded once, stored once per round, read back exactly; the
older forms (inline string, list of dicts) still read."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
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
from evmonitor.config import Settings
from evmonitor.errors import TransientError
from evmonitor.transport import Payloads, decode_events, encode_events, payload_ref
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


class FakeRedis:
    """The two calls `Payloads` makes to store and read, on a dict; `down` makes them fail."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.sets: list[tuple[str, int]] = []
        self.down = False

    def set(self, key: str, value: str, ex: int) -> None:
        if self.down:
            raise RedisConnectionError("connection refused")
        self.sets.append((key, ex))
        self.data[key] = value.encode()

    def get(self, key: str) -> bytes | None:
        if self.down:
            raise RedisConnectionError("connection refused")
        return self.data.get(key)

    def delete(self, *keys: str) -> None:
        for key in keys:
            self.data.pop(key, None)


def closed_batch(events: list[dict]):
    batcher = Batcher(max_events=100, max_age_s=1.0)
    for event in events:
        batcher.add(event, now=0.0)
    return batcher.take()


def test_the_bridge_stores_a_batch_once_per_round_and_its_tasks_carry_the_reference():
    """Both sinks' tasks of a round carry the batch id and one reference to one stored JSON string of its events;
    a re-publish (the next round) stores it again with a fresh TTL."""
    app, redis = FakeApp(), FakeRedis()
    events = wire_batch()
    batch = closed_batch(events)
    payloads = Payloads(redis, "evmonitor:test:", ttl_s=900)
    publish = CeleryPublisher(app, payloads)
    for sink in (SinkName.PERSIST, SinkName.INDEX):
        publish(sink, batch)
    assert redis.sets == [(f"evmonitor:test:payload:{batch.batch_id}", 900)]
    batch.publish_count += 1  # what the bridge counts once every sink took the batch
    publish(SinkName.INDEX, batch)  # a re-publish to the sink that has not completed it
    assert len(redis.sets) == 2
    assert [(name, queue) for name, _, queue in app.sent] == [
        (TASK_BY_SINK[s], QUEUE_BY_SINK[s]) for s in (SinkName.PERSIST, SinkName.INDEX, SinkName.INDEX)
    ]
    assert all(args[0] == batch.batch_id for _, args, _ in app.sent)
    refs = [args[1] for _, args, _ in app.sent]
    assert refs[0] == refs[1] == refs[2] == {"ref": f"evmonitor:test:payload:{batch.batch_id}"}
    assert payload_ref(refs[0]) == refs[0]["ref"]
    assert decode_events(payloads.get(refs[0]["ref"])) == events
    payloads.drop([batch.batch_id])
    assert payloads.get(refs[0]["ref"]) is None


def test_a_payload_redis_did_not_take_fails_the_publish_and_the_retry_stores_it():
    """Redis down: the publish raises TransientError (the bridge keeps the batch and retries) and sends no task
    that would refer to nothing; the retry of the same round stores it."""
    app, redis = FakeApp(), FakeRedis()
    batch = closed_batch(wire_batch())
    publish = CeleryPublisher(app, Payloads(redis, "p:", ttl_s=900))
    redis.down = True
    with pytest.raises(TransientError, match="broker: storing payload p:payload:"):
        publish(SinkName.PERSIST, batch)
    assert app.sent == [] and redis.data == {}
    redis.down = False
    publish(SinkName.PERSIST, batch)
    assert list(redis.data) == [f"p:payload:{batch.batch_id}"] and len(app.sent) == 1


def test_a_payload_ttl_not_above_the_republish_delay_is_refused_with_both_settings_named():
    """The bridge renews a waiting batch's payload only by re-publishing it."""
    with pytest.raises(ValidationError, match="EVMON_PAYLOAD_TTL_S must be longer than EVMON_REPUBLISH_AFTER_S"):
        Settings(payload_ttl_s=60, republish_after_s=60)
    assert Settings(payload_ttl_s=61, republish_after_s=60).payload_ttl_s == 61


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
        payload = encode_events(events)
        for stored in (payload, payload.encode()):  # inline in a task, and as Redis gives it back
            back = decode_events(stored)
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


def test_the_bridges_forget_runs_every_part_and_then_reports_a_failure():
    """The completion markers and the payloads are forgotten together: one store failing neither stops the other nor
    goes unreported (the bridge logs nothing for it and moves on; beat and the TTL clear what is left)."""
    from evmonitor.bridge.wiring import _forgetting

    calls: list[tuple[str, list[str]]] = []

    def markers(ids: list[str]) -> None:
        calls.append(("markers", ids))
        raise TransientError("postgres down")

    def payloads(ids: list[str]) -> None:
        calls.append(("payloads", ids))

    with pytest.raises(TransientError, match="postgres down"):
        _forgetting(markers, payloads)(["b1", "b2"])
    assert calls == [("markers", ["b1", "b2"]), ("payloads", ["b1", "b2"])]
