"""The fast path agrees with the pydantic path: for any bytes it gives nothing or exactly its verdict."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from evmonitor.bridge.bridge import _received_at, check_record
from evmonitor.bridge.metrics import BridgeCollector
from evmonitor.contract import STORABLE_METER_WH, Limits, Rejection
from evmonitor.fastpath import FastPath
from evmonitor.simulator import plan_drain
from tests.factories import NOW, encode, make_event
from tests.unit.test_bridge import Harness, Record

TS = int(NOW.timestamp() * 1000)
TYPES = ["station_boot", "station_status", "session_started", "session_progress", "session_completed"]
PLAN = plan_drain(stations=6, sessions=12, seed=15, start=NOW - timedelta(hours=2), end=NOW, now=NOW)
SIMULATED = [json.loads(m.value) for m in PLAN.messages]
FIELDS = sorted({name for event in SIMULATED for name in event} | {"heartbeat", "info", "id_tag", "id_tag_hash"})


def slow(raw: bytes, received_ms: int, limits: Limits) -> Any:
    """What the bridge's pydantic path makes of the record: a rejection, or (wire, timestamp)."""
    received_at = _received_at(Record(0, b"k", raw, received_ms), lambda: NOW)
    result = check_record(raw, received_at, limits)
    return result if isinstance(result, Rejection) else (result.to_wire(), result.timestamp)


def assert_agree(raw: bytes, received_ms: int, limits: Limits = Limits()) -> tuple[Any, Any]:
    fast, verdict = FastPath(limits)(raw, received_ms), slow(raw, received_ms, limits)
    if fast is not None:
        assert not isinstance(verdict, Rejection), f"fast path accepted what the models reject: {verdict}"
        # JSON text, not ==: 52 == 52.0 and 0.0 == -0.0, and the field order travels too
        assert json.dumps(fast[0]) == json.dumps(verdict[0])
        assert fast[1] == verdict[1] and fast[1].utcoffset() == timedelta(0)
    return fast, verdict


def _ts(moment: datetime, digits: int = 3, offset_min: int = 0, z: str = "Z") -> str:
    local = moment + timedelta(minutes=offset_min)
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{local.microsecond:06d}"[: digits + 1] if digits else "")
    if offset_min == 0 and z:
        return text + z
    sign = "+" if offset_min >= 0 else "-"
    return text + f"{sign}{abs(offset_min) // 60:02d}:{abs(offset_min) % 60:02d}"


huge = st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**20, 10**30, -(2**64), 10**400])
bounds = st.sampled_from([0, 1, -1, 64, 65, 90, 91, -90, -91, 99, 100, 101, 180, -180, 181, 999, 1000, 1001, 2000,
                          2001, STORABLE_METER_WH, STORABLE_METER_WH + 1, 10.0, 10.00004, 10.00005, 999.00004,
                          999.00005, 999.0001, 5e-324, -0.0, 0.0, 1e-7, 1e308, 90.00000000000001])  # fmt: skip
texts = st.sampled_from(["", "x", "x" * 64, "x" * 65, "x" * 200, "x" * 201, "x" * 500, "x" * 501, "Köln", "東京",
                         "😀" * 64, "😀" * 65, "a\tb", "a\x7fb", "a\u2028b", "a\u00a0b", "\\u0041", "a/b", " ",
                         "ST-0001\n", "\x00", "\ud800", "{[", "Available", "available", "NoError", "Local"])  # fmt: skip
uuids = st.uuids().map(str)
uuid_forms = uuids.flatmap(lambda u: st.sampled_from([u, u.upper(), "{" + u + "}", u.replace("-", ""),
                                                      "urn:uuid:" + u, u[:-1], u + " "]))  # fmt: skip
moments = st.integers(-40 * 86400 * 10**6, 20 * 60 * 10**6).map(lambda us: NOW + timedelta(microseconds=us))
timestamps = st.builds(_ts, moments, st.sampled_from([0, 1, 2, 3, 6, 7, 9]),
                       st.sampled_from([0, 0, 60, -60, 90, -330, 23 * 60 + 59, 24 * 60]),
                       st.sampled_from(["Z", "z", "+00:00", "-00:00"]))  # fmt: skip
odd_timestamps = st.sampled_from(["2026-11-24 12:00:00Z", "2026-11-24t12:00:00Z", "2026-11-24T12:00:00",
                                  "2026-11-24T12:00:60Z", "2026-02-29T12:00:00Z", "2026-11-24T24:00:00Z",
                                  "2026-11-24T12:00:00.Z", "2026-11-24T12:00:00,5Z", "٢٠٢٦-11-24T12:00:00Z",
                                  "2026-11-24T12:00:00Z\n", "20261124T120000Z", "0001-01-01T00:00:00Z",
                                  "9999-12-31T23:59:59.999999Z", "2026-11-24T12:00:00+2400", "2026-11-24"])  # fmt: skip
values = (st.none() | st.booleans() | st.integers(-(10**13), 10**13) | huge | bounds | texts | uuid_forms
          | timestamps | odd_timestamps | st.floats() | st.floats(0, 1000)
          | st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))  # fmt: skip


def _like(value: Any) -> st.SearchStrategy[Any]:
    """Values of the kind a field already holds: where a valid event becomes a borderline one."""
    if isinstance(value, bool):
        return st.booleans() | st.sampled_from([0, 1, None])
    if isinstance(value, (int, float)):
        near = [value + 1, value - 1] + ([float(value)] if abs(value) < 1e300 else [])
        return bounds | st.integers(-5, 2000) | st.floats(-1, 2001) | st.sampled_from(near)
    if isinstance(value, str) and len(value) == 36 and value.count("-") == 4:
        return uuid_forms
    if isinstance(value, str) and value[:2] == "20":
        return timestamps | odd_timestamps
    return texts | st.text(max_size=70)


def _mutate(data: st.DataObject, event: dict[str, Any]) -> dict[str, Any]:
    event = dict(event)
    for _ in range(data.draw(st.sampled_from([0, 1, 1, 1, 2, 3]))):
        kind = data.draw(st.sampled_from(["drop", "set", "nudge", "nudge", "nudge", "extra", "id_tag", "type"]))
        if kind == "nudge" and event:
            name = data.draw(st.sampled_from(sorted(event)))
            event[name] = data.draw(_like(event[name]))
        elif kind == "drop" and event:
            del event[data.draw(st.sampled_from(sorted(event)))]
        elif kind == "set":
            event[data.draw(st.sampled_from(FIELDS))] = data.draw(values)
        elif kind == "extra":
            event[data.draw(st.text(max_size=6))] = data.draw(values)
        elif kind == "id_tag":
            event[data.draw(st.sampled_from(["id_tag", "id_tag_hash"]))] = data.draw(values | st.text(max_size=70))
        else:
            event["event_type"] = data.draw(st.sampled_from([*TYPES, "Station_Boot", "", None, 1, ["station_boot"]]))
    return event


def _encode(data: st.DataObject, event: dict[str, Any]) -> bytes:
    style = data.draw(st.sampled_from(["compact", "compact", "compact", "ascii", "spaced", "duplicate", "bytes"]))
    if style == "compact":
        return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    if style == "ascii":
        return json.dumps(event).encode()
    if style == "spaced":
        return (" " + json.dumps(event, indent=1) + "\n").encode("utf-8", "surrogatepass")
    text = json.dumps(event, ensure_ascii=False)
    if style == "duplicate" and event:  # the same key twice: both decoders keep the last value
        key = data.draw(st.sampled_from(sorted(event)))
        return ("{" + json.dumps(key) + ":" + json.dumps(data.draw(values)) + "," + text[1:]).encode("utf-8", "surrogatepass")
    raw = bytearray(text.encode("utf-8", "surrogatepass"))  # one byte changed, inserted or removed
    at = data.draw(st.integers(0, max(0, len(raw) - 1)))
    action = data.draw(st.sampled_from(["flip", "insert", "delete"]))
    byte = data.draw(st.integers(0, 255))
    if action == "flip" and raw:
        raw[at] = byte
    elif action == "insert":
        raw.insert(at, byte)
    elif raw:
        del raw[at]
    return bytes(raw)


limits_st = st.one_of(
    st.just(Limits()),
    st.just(Limits()),
    st.builds(Limits, max_payload_bytes=st.sampled_from([64 * 1024, 64 * 1024, 300]),
              max_event_age=st.sampled_from([timedelta(days=30), timedelta(0), timedelta(days=365 * 3000)]),
              max_event_future=st.sampled_from([timedelta(minutes=15), timedelta(0), timedelta(days=365 * 100)]),
              max_power_kw=st.sampled_from([1000.0, 50.0, 1e300, math.inf, math.nan]),
              max_meter_wh=st.sampled_from([10**12, 10**6, 10**15]),
              max_price_eur_per_kwh=st.sampled_from([10.0, 0.5, 999.0, 5000.0]),
              id_tag_hash_key=st.sampled_from([b"", b"k3y"])),
)  # fmt: skip
received = st.one_of(st.just(TS), st.just(TS), st.integers(TS - 3_000_000_000, TS + 3_000_000_000),
                     st.sampled_from([0, -1, 1, 2**42 - 1, 2**42, 2**62, None]))  # fmt: skip
events = st.sampled_from(SIMULATED) | st.sampled_from(TYPES).map(make_event)


@settings(max_examples=1500)
@given(st.data(), events, limits_st, received)
def test_fast_path_agrees_with_the_models_on_mutated_events(data, event, limits, received_ms):
    """A mutated event, encoded any way: the fast path gives nothing, or what the models give."""
    assert_agree(_encode(data, _mutate(data, event)), received_ms, limits)


@settings(max_examples=1000)
@given(st.data(), events, st.sampled_from([Limits(), Limits(max_power_kw=50.0, max_price_eur_per_kwh=0.5,
                                                             max_meter_wh=10**6, id_tag_hash_key=b"k")]))
def test_fast_path_agrees_with_the_models_on_borderline_values(data, event, limits):
    """One field moved to a value of its kind (bounds, forms, lengths): nothing, or what the models give."""
    name = data.draw(st.sampled_from(sorted(event)))
    raw = json.dumps({**event, name: data.draw(_like(event[name]))}, ensure_ascii=data.draw(st.booleans()))
    assert_agree(raw.encode("utf-8", "surrogatepass"), TS, limits)


@settings(max_examples=500)
@given(st.binary(max_size=300), received)
@example(b'{"a":' + b"[" * 995 + b"]" * 995 + b"}", TS)
def test_fast_path_agrees_with_the_models_on_arbitrary_bytes(raw, received_ms):
    """Any bytes at all: the fast path gives nothing, or what the models give."""
    assert_agree(raw, received_ms)


@given(st.sampled_from(SIMULATED), st.sampled_from([0, 1, 2, 3, 6]), st.sampled_from([0, 60, -330]))
def test_fast_path_takes_every_clean_event_in_the_usual_forms(event, digits, offset_min):
    """Valid events with 0-6 fractional digits and any offset never need the slow path."""
    moment = datetime.fromisoformat(event["timestamp"])
    raw = encode({**event, "timestamp": _ts(moment, digits, offset_min)})
    fast, verdict = assert_agree(raw, TS)
    assert fast is not None and not isinstance(verdict, Rejection)


def test_every_simulated_event_takes_the_fast_path():
    """A clean simulator stream never falls back to the models."""
    missed = [m.value for m in PLAN.messages if FastPath(Limits())(m.value, TS) is None]
    assert missed == []


@given(st.integers(1, 2**42 - 1))
def test_receive_time_from_milliseconds_is_the_bridges(received_ms):
    """Integer milliseconds give the instant the bridge's float conversion gives, below 2**42."""
    expected = datetime.fromtimestamp(received_ms / 1000, tz=timezone.utc)
    assert datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=received_ms) == expected


def test_window_edges_match_to_the_microsecond():
    """An event exactly at either edge of the window is taken; one microsecond beyond is not."""
    limits = Limits()
    for moment in (NOW - limits.max_event_age, NOW + limits.max_event_future):
        for step in (timedelta(0), timedelta(microseconds=-1), timedelta(microseconds=1)):
            raw = encode(make_event("station_status", timestamp=_ts(moment + step, 6)))
            assert_agree(raw, TS, limits)


def test_the_bridge_takes_a_clean_simulator_stream_without_the_models():
    """The bridge validates every record of a clean simulated stream on the fast path."""
    h = Harness(batch_max_events=50)
    h.consumer.feed("ev.session.progress", 0, [m.value for m in PLAN.messages])
    h.run(steps=len(PLAN.messages) // 50 + 2)
    assert h.bridge.stats.valid == len(PLAN.messages) and h.bridge.stats.rejected == {}
    assert h.bridge.stats.slow_path == 0


def test_the_bridge_asks_the_models_when_the_fast_path_is_unsure():
    """An upper-case UUID and a broken record go the slow way: one normalised, one dead-lettered."""
    event = make_event("station_status")
    h = Harness(batch_max_events=2)
    h.consumer.feed("ev.station.status", 0, [encode({**event, "event_id": event["event_id"].upper()}), b"{"])
    h.run(steps=3)
    assert h.bridge.stats.slow_path == 2 and h.bridge.stats.valid == 1
    assert h.bridge.stats.rejected == {"invalid_json": 1}
    (batch,) = h.bridge.inflight.values()
    assert [e["event_id"] for e in batch.events] == [event["event_id"]]
    (family,) = [m for m in BridgeCollector(h.bridge).collect() if m.name == "evmonitor_bridge_slow_path_records"]
    assert [s.value for s in family.samples if s.name.endswith("_total")] == [2]
