"""Deliberately bad events, each tagged with the `Reason` the contract must reject it with.

Every kind starts from a real valid event (so it is keyed by a real station and sits on that
event's topic) and breaks exactly one thing, the way real producers break things: a `str(dict)`
instead of JSON, a cut-off buffer, Latin-1 text, a renamed field, a unit sent as a string, a
clock five years off, a debug dump that blows the size limit.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from evmonitor.contract import TOPIC_BY_TYPE, EventType
from evmonitor.errors import Reason
from evmonitor.simulator.messages import Message, encode, iso_ms, new_uuid

__all__ = ["BAD_KINDS", "bad_messages", "make_bad"]

Event = dict[str, Any]
_YEAR_MS = 365 * 86_400_000

_REQUIRED: dict[str, tuple[str, ...]] = {
    "station_boot": ("name", "operator", "city", "latitude", "longitude", "max_power_kw", "connector_count",
                     "price_eur_per_kwh"),
    "station_status": ("connector_id", "status", "error_code"),
    "session_started": ("session_id", "connector_id", "meter_start_wh", "price_eur_per_kwh"),
    "session_progress": ("session_id", "connector_id", "meter_wh", "power_kw"),
    "session_completed": ("session_id", "connector_id", "meter_stop_wh", "stop_reason"),
}
_ENVELOPE = ("event_id", "event_type", "schema_version", "timestamp", "station_id")

# (field, bad value) pairs per event type; None = any type
_WRONG_TYPE: dict[str | None, tuple[tuple[str, Any], ...]] = {
    None: (("station_id", 12345), ("timestamp", 1714550000), ("schema_version", "1"), ("event_type", 5),
           ("event_id", 123456789)),
    "station_boot": (("latitude", "52.52"), ("max_power_kw", "150 kW"), ("connector_count", True),
                     ("connector_count", 2.0), ("price_eur_per_kwh", "0.59"), ("name", ["Ladepunkt"])),
    "station_status": (("connector_id", True), ("connector_id", "1"), ("heartbeat", "yes")),
    "session_started": (("meter_start_wh", "1234567"), ("meter_start_wh", 1234.5), ("connector_id", True),
                        ("soc_percent", "45"), ("vehicle_battery_kwh", "77.4 kWh")),
    "session_progress": (("meter_wh", "1234567"), ("power_kw", "11.0"), ("connector_id", False),
                         ("soc_percent", True), ("meter_wh", 1e6)),
    "session_completed": (("meter_stop_wh", "99999"), ("connector_id", True), ("meter_stop_wh", 12.5)),
}
_OUT_OF_RANGE: dict[str | None, tuple[tuple[str, Any], ...]] = {
    None: (("station_id", ""), ("station_id", "X" * 65)),
    "station_boot": (("latitude", 200.0), ("longitude", -200.0), ("max_power_kw", 5000.0), ("max_power_kw", -50.0),
                     ("connector_count", 0), ("price_eur_per_kwh", 25.0), ("price_eur_per_kwh", -0.1)),
    "station_status": (("connector_id", -1), ("connector_id", 100)),
    "session_started": (("meter_start_wh", -1), ("soc_percent", 140.0), ("vehicle_battery_kwh", 0.0),
                        ("meter_start_wh", 10**13), ("connector_id", 0)),
    "session_progress": (("meter_wh", -5000), ("power_kw", -3.5), ("power_kw", 2500.0), ("soc_percent", -4.0),
                         ("voltage_v", 5000.0), ("current_a", 9999.0)),
    "session_completed": (("meter_stop_wh", -1), ("connector_id", 0)),
}
_INVALID_VALUE: dict[str | None, tuple[tuple[str, Any], ...]] = {
    None: (("event_id", "not-a-uuid"), ("timestamp", "yesterday"), ("timestamp", "2024-02-30T10:00:00Z"),
           ("station_id", "DE-BER\n0001")),
    "station_status": (("status", "Broken"), ("error_code", "Melted"), ("status", "available")),
    "session_started": (("session_id", "1234"),),
    "session_progress": (("session_id", "session-1"),),
    "session_completed": (("stop_reason", "BatteryFull"), ("session_id", "")),
}


def _with(event: Event, name: str, value: Any) -> Event:
    return {**event, name: value}


def _pick_change(rng: random.Random, table: dict, event: Event) -> tuple[str, Any]:
    options = table[None] + table.get(event["event_type"], ())
    return rng.choice(options)


def _invalid_json(rng: random.Random, event: Event, now_ms: int) -> tuple[bytes, Reason]:
    body = encode(event)
    variant = rng.randrange(4)
    if variant == 0:  # str(dict) instead of json.dumps: single quotes
        raw = str(event).encode()
    elif variant == 1:
        raw = body[:-1] + b",}"
    elif variant == 2:
        raw = body.replace(b'":', b'" ', 1)
    else:
        raw = body + body
    return raw, Reason.INVALID_JSON


def _truncated(rng: random.Random, event: Event, now_ms: int) -> tuple[bytes, Reason]:
    body = encode(event)
    cut = rng.randint(1, len(body) - 1)
    while cut > 1 and (body[cut] & 0xC0) == 0x80:  # never inside a UTF-8 character: that is invalid_text
        cut -= 1
    return body[:cut], Reason.INVALID_JSON


def _not_utf8(rng: random.Random, event: Event, now_ms: int) -> tuple[bytes, Reason]:
    variant = rng.randrange(4)
    if variant == 3:  # UTF-16 cut in half by a gateway: a lone surrogate, as a JSON escape
        return json.dumps({**event, "info": "Ladestation \ud83d"}).encode(), Reason.INVALID_TEXT
    if variant == 0:  # a Windows gateway writing cp1252
        text = json.dumps({**event, "info": "Störung an Ladesäule"}, ensure_ascii=False)
        return text.encode("cp1252", errors="replace"), Reason.INVALID_TEXT
    if variant == 1:
        return json.dumps(event).encode("utf-16"), Reason.INVALID_TEXT
    return b"\xff" + rng.randbytes(rng.randint(8, 200)), Reason.INVALID_TEXT


def _empty(rng: random.Random, event: Event, now_ms: int) -> tuple[bytes, Reason]:
    return rng.choice((b"", b" ", b"\n")), Reason.EMPTY_VALUE


def _not_an_object(rng: random.Random, event: Event, now_ms: int) -> tuple[bytes, Reason]:
    return rng.choice((encode([event]), b'"station_boot"', b"42", b"null", b"true", b"[]")), Reason.NOT_AN_OBJECT


def _missing_field(rng: random.Random, event: Event, now_ms: int) -> tuple[bytes, Reason]:
    name = rng.choice(_ENVELOPE + _REQUIRED[event["event_type"]])
    return encode({k: v for k, v in event.items() if k != name}), Reason.MISSING_FIELD


def _wrong_type(rng: random.Random, event: Event, now_ms: int) -> tuple[bytes, Reason]:
    return encode(_with(event, *_pick_change(rng, _WRONG_TYPE, event))), Reason.WRONG_TYPE


def _unknown_type(rng: random.Random, event: Event, now_ms: int) -> tuple[bytes, Reason]:
    kind = rng.choice(("session_paused", "station_reboot", "SessionStarted", "meter_values", "firmware_update"))
    return encode(_with(event, "event_type", kind)), Reason.UNKNOWN_EVENT_TYPE


def _schema_version(rng: random.Random, event: Event, now_ms: int) -> tuple[bytes, Reason]:
    return encode(_with(event, "schema_version", 2)), Reason.UNSUPPORTED_SCHEMA_VERSION


def _non_finite(rng: random.Random, event: Event, now_ms: int) -> tuple[bytes, Reason]:
    floats = [k for k, v in event.items() if type(v) is float] or ["connector_id"]
    value = rng.choice((float("nan"), float("inf"), float("-inf")))
    return json.dumps(_with(event, rng.choice(floats), value)).encode(), Reason.NON_FINITE


def _out_of_range(rng: random.Random, event: Event, now_ms: int) -> tuple[bytes, Reason]:
    return encode(_with(event, *_pick_change(rng, _OUT_OF_RANGE, event))), Reason.OUT_OF_RANGE


def _far_timestamp(rng: random.Random, event: Event, now_ms: int) -> tuple[bytes, Reason]:
    moment = now_ms + rng.choice((-5, 5)) * _YEAR_MS + rng.randint(0, 86_400_000)
    return encode(_with(event, "timestamp", iso_ms(moment))), Reason.TIMESTAMP_OUT_OF_WINDOW


def _naive_timestamp(rng: random.Random, event: Event, now_ms: int) -> tuple[bytes, Reason]:
    return encode(_with(event, "timestamp", event["timestamp"].rstrip("Z"))), Reason.INVALID_VALUE


def _invalid_value(rng: random.Random, event: Event, now_ms: int) -> tuple[bytes, Reason]:
    return encode(_with(event, *_pick_change(rng, _INVALID_VALUE, event))), Reason.INVALID_VALUE


def _too_large(rng: random.Random, event: Event, now_ms: int) -> tuple[bytes, Reason]:
    line = f"{event['station_id']} diag {rng.getrandbits(64):016x} ok; "
    dump = line * (rng.randint(70_000, 300_000) // len(line) + 1)  # 70-300 KB: over 64 KiB, under 1 MB
    return encode(_with(event, "diagnostics", dump)), Reason.TOO_LARGE


BAD_KINDS: dict[str, Callable[[random.Random, Event, int], tuple[bytes, Reason]]] = {
    "invalid_json": _invalid_json,
    "truncated_json": _truncated,
    "not_utf8": _not_utf8,
    "empty": _empty,
    "not_an_object": _not_an_object,
    "missing_field": _missing_field,
    "wrong_type": _wrong_type,
    "unknown_event_type": _unknown_type,
    "schema_version": _schema_version,
    "non_finite": _non_finite,
    "out_of_range": _out_of_range,
    "far_timestamp": _far_timestamp,
    "naive_timestamp": _naive_timestamp,
    "invalid_value": _invalid_value,
    "too_large": _too_large,
}
_KIND_FNS = tuple(BAD_KINDS.values())


def make_bad(rng: random.Random, template: Event, now_ms: int) -> tuple[bytes, Reason]:
    """A bad payload built from `template` (a valid event) and the reason it must be rejected with."""
    event = {**template, "event_id": new_uuid(rng)}  # never collide with the valid event's id
    return rng.choice(_KIND_FNS)(rng, event, now_ms)


def bad_messages(rng: random.Random, templates: list[Event], count: int, now_ms: int) -> list[Message]:
    """`count` bad messages spread evenly over event types (hence topics) and over stations."""
    by_type: dict[str, list[Event]] = {}
    for event in templates:
        by_type.setdefault(event["event_type"], []).append(event)
    kinds = sorted(by_type)
    out = []
    for _ in range(count):
        template = rng.choice(by_type[rng.choice(kinds)])
        raw, reason = make_bad(rng, template, now_ms)
        topic = TOPIC_BY_TYPE[EventType(template["event_type"])]
        out.append(Message(topic, template["station_id"].encode(), raw, reason))
    return out
