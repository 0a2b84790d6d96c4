"""Hostile input: every kind ends as a dead letter with its reason and bytes, or as an event kept verbatim."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evmonitor.bridge.bridge import check_record
from evmonitor.contract import (
    STORABLE_METER_WH,
    STORABLE_PRICE_EUR_PER_KWH,
    Limits,
    Rejection,
    StationBoot,
    validate,
)
from evmonitor.deadletter import Source, deadletter_record, parse_record
from evmonitor.errors import Reason
from tests.factories import NOW, encode, make_event
from tests.unit.test_bridge import Harness, Record, TP, TS

ROOT = Path(__file__).resolve().parents[2]
TYPES = ["station_boot", "station_status", "session_started", "session_progress", "session_completed"]
MARKUP = ["<script>alert(1)</script>", "'; DROP TABLE charging_sessions; --", '=HYPERLINK("http://x","y")',
          "+31 20 555", "-2+3", "@SUM(A1:A9)", "\t=1+1", "\r=1+1", '"><img src=x onerror=alert(1)>']  # fmt: skip


def _e(event_type: str, **fields: Any) -> bytes:
    return encode(make_event(event_type, **fields))


def _swap(event_type: str, old: bytes, new: bytes, **fields: Any) -> bytes:
    raw = _e(event_type, **fields)
    assert old in raw
    return raw.replace(old, new, 1)


def _extra(event_type: str, raw_json: bytes) -> bytes:
    """The event with one more field whose value is the given raw JSON text."""
    return _e(event_type)[:-1] + b', "x_extra": ' + raw_json + b"}"


# (kind, the record's value (None: a tombstone), the reason it must be dead-lettered with)
HOSTILE: list[tuple[str, bytes | None, Reason]] = [
    ("tombstone", None, Reason.EMPTY_VALUE),
    ("empty value", b"", Reason.EMPTY_VALUE),
    ("whitespace value", b" \r\n\t", Reason.EMPTY_VALUE),
    ("connector_id over int4", _e("station_status", connector_id=2**31), Reason.OUT_OF_RANGE),
    ("connector_id over int8", _e("session_started", connector_id=2**64), Reason.OUT_OF_RANGE),
    ("connector_count over int4", _e("station_boot", connector_count=2**31), Reason.OUT_OF_RANGE),
    ("meter over bigint", _e("session_progress", meter_wh=2**63), Reason.OUT_OF_RANGE),
    ("meter start over bigint", _e("session_started", meter_start_wh=10**30), Reason.OUT_OF_RANGE),
    ("meter stop negative over bigint", _e("session_completed", meter_stop_wh=-(2**63) - 1), Reason.OUT_OF_RANGE),
    ("price past numeric(8,4)", _e("session_started", price_eur_per_kwh=12345.6), Reason.OUT_OF_RANGE),
    ("integer too big for a float", _e("station_boot", latitude=10**400), Reason.OUT_OF_RANGE),
    ("1e999", _swap("session_progress", b"48.5", b"1e999"), Reason.NON_FINITE),
    ("-1e999", _swap("station_boot", b"150.0", b"-1e999"), Reason.NON_FINITE),
    ("huge exponent", _swap("session_progress", b"48.5", b"1e999999999999"), Reason.NON_FINITE),
    ("Infinity literal", _swap("session_progress", b"48.5", b"-Infinity"), Reason.NON_FINITE),
    ("5000-digit integer", _swap("session_progress", b"105000", b"9" * 5000), Reason.OUT_OF_RANGE),
    ("5000-digit integer in an extra field", _extra("station_status", b"1" * 5000), Reason.OUT_OF_RANGE),
    ("60,000-digit float", _swap("session_progress", b"48.5", b"4" * 60_000 + b".5"), Reason.NON_FINITE),
    ("nested arrays past the recursion limit", b'{"a":' + b"[" * 30_000 + b"]" * 30_000 + b"}", Reason.INVALID_JSON),
    ("nested objects past the recursion limit", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, Reason.INVALID_JSON),
    ("deep nesting that parses, with a NUL inside",
     _extra("station_status", b"[" * 900 + b'"\\u0000"' + b"]" * 900), Reason.INVALID_VALUE),
    ("deep nesting that parses, with a lone surrogate inside",
     _extra("station_status", b"[" * 900 + b'"\\ud800"' + b"]" * 900), Reason.INVALID_TEXT),
    ("invalid UTF-8", b'{"event_type": "\xc3\x28"}', Reason.INVALID_TEXT),
    ("Latin-1 text", _swap("station_boot", b"Alexanderplatz 1", b"Lades\xe4ule"), Reason.INVALID_TEXT),
    ("overlong UTF-8 slash", _swap("station_boot", b"Alexanderplatz 1", b"A\xc0\xafB"), Reason.INVALID_TEXT),
    ("UTF-8-encoded surrogate", _swap("station_boot", b"Alexanderplatz 1", b"\xed\xa0\x80"), Reason.INVALID_TEXT),
    ("lone high surrogate in a name", _swap("station_boot", b"Alexanderplatz 1", b"\\ud800x"), Reason.INVALID_TEXT),
    ("lone low surrogate in a station id", _swap("station_status", b"ST-0001", b"ST-\\uDFFF"), Reason.INVALID_TEXT),
    ("lone surrogate in an id_tag", _swap("session_started", b"RFID-1234", b"\\ud83d"), Reason.INVALID_TEXT),
    ("lone surrogate in a key", _extra("station_status", b'{"\\udc00": 1}'), Reason.INVALID_TEXT),
    ("reversed surrogate pair", _swap("station_boot", b"Alexanderplatz 1", b"\\ude00\\ud83d"), Reason.INVALID_TEXT),
    ("NUL in a station id", _swap("station_status", b"ST-0001", b"ST\\u0000"), Reason.INVALID_VALUE),
    ("30 February", _e("station_status", timestamp="2026-02-30T10:00:00Z"), Reason.INVALID_VALUE),
    ("hour 25", _e("station_status", timestamp="2026-11-24T25:00:00Z"), Reason.INVALID_VALUE),
    ("minute 60", _e("station_status", timestamp="2026-11-24T11:60:00Z"), Reason.INVALID_VALUE),
    ("month 13", _e("station_status", timestamp="2026-13-01T11:00:00Z"), Reason.INVALID_VALUE),
    ("year 0", _e("station_status", timestamp="0000-11-24T11:00:00Z"), Reason.INVALID_VALUE),
    ("offset +25:00", _e("station_status", timestamp="2026-11-24T11:00:00+25:00"), Reason.INVALID_VALUE),
    ("no offset", _e("station_status", timestamp="2026-11-24T11:00:00"), Reason.INVALID_VALUE),
    ("no seconds", _e("station_status", timestamp="2026-11-24T11:00Z"), Reason.INVALID_VALUE),
    ("RFC 2822", _e("station_status", timestamp="Tue, 24 Nov 2026 11:00:00 +0000"), Reason.INVALID_VALUE),
    ("unix seconds as a string", _e("station_status", timestamp="1795518000"), Reason.INVALID_VALUE),
    ("offset without colon", _e("station_status", timestamp="2026-11-24T11:00:00+0100"), Reason.INVALID_VALUE),
    ("trailing newline", _e("station_status", timestamp="2026-11-24T11:00:00Z\n"), Reason.INVALID_VALUE),
    ("non-ASCII digits", _e("station_status", timestamp="٢٠٢٦-11-24T11:00:00Z"), Reason.INVALID_VALUE),
    ("bool connector_id", _e("station_status", connector_id=True), Reason.WRONG_TYPE),
    ("bool meter", _e("session_progress", meter_wh=False), Reason.WRONG_TYPE),
    ("bool latitude", _e("station_boot", latitude=True), Reason.WRONG_TYPE),
    ("bool price", _e("session_started", price_eur_per_kwh=True), Reason.WRONG_TYPE),
    ("bool schema_version", _e("station_status", schema_version=True), Reason.WRONG_TYPE),
    ("string meter", _e("session_completed", meter_stop_wh="110000"), Reason.WRONG_TYPE),
    ("string power", _e("session_progress", power_kw="48.5"), Reason.WRONG_TYPE),
    ("int heartbeat", _e("station_status", heartbeat=1), Reason.WRONG_TYPE),
    ("object for a name", _e("station_boot", name={"first": "A"}), Reason.WRONG_TYPE),
    ("array for a city", _e("station_boot", city=["Berlin"]), Reason.WRONG_TYPE),
    ("object for a status", _e("station_status", status={"value": "Available"}), Reason.WRONG_TYPE),
    ("number for an error code", _e("station_status", error_code=0), Reason.WRONG_TYPE),
    ("null for a stop reason", _e("session_completed", stop_reason=None), Reason.WRONG_TYPE),
    ("number for a session id", _e("session_progress", session_id=42), Reason.WRONG_TYPE),
    ("object for a timestamp", _e("station_status", timestamp={"$date": 1}), Reason.WRONG_TYPE),
    ("object for event_type", encode({**make_event("station_status"), "event_type": {"x": 1}}), Reason.WRONG_TYPE),
    ("status in lower case", _e("station_status", status="available"), Reason.INVALID_VALUE),
    ("status outside OCPP 1.6", _e("station_status", status="Occupied"), Reason.INVALID_VALUE),
    ("error code outside OCPP 1.6", _e("station_status", error_code="Overheated"), Reason.INVALID_VALUE),
    ("stop reason outside OCPP 1.6", _e("session_completed", stop_reason="BatteryFull"), Reason.INVALID_VALUE),
    ("status with padding", _e("station_status", status=" Charging"), Reason.INVALID_VALUE),
]  # fmt: skip


@pytest.mark.parametrize("value, reason", [(v, r) for _, v, r in HOSTILE], ids=[k for k, _, _ in HOSTILE])
def test_each_hostile_kind_is_dead_lettered_with_its_reason(value, reason):
    """One hostile record per kind gets its own reason, and its dead letter keeps the original bytes."""
    result = check_record(value, NOW, Limits())
    assert isinstance(result, Rejection) and result.reason == reason, result
    record = parse_record(deadletter_record(reason=result.reason, detail=result.detail, original=value or b"",
                                            source=Source("ev.station.status", 0, 7, b"ST-0001"), received_at=NOW))  # fmt: skip
    assert record["reason"] == reason and record["original"] == (value or b"")


def test_an_integer_too_big_for_a_float_says_so():
    """10**400 for a latitude is out of range, and the detail names the field and the problem."""
    result = validate(_e("station_boot", latitude=10**400), received_at=NOW)
    assert isinstance(result, Rejection) and result.detail == "latitude: an integer too large for a floating-point number"


def test_validation_itself_never_gives_internal_error():
    """The table never needs the bridge's last line of defence: validate handles each kind itself."""
    for _, value, _ in HOSTILE:
        if value is not None:
            assert isinstance(validate(value, received_at=NOW), Rejection)


@pytest.mark.parametrize("text", MARKUP)
@pytest.mark.parametrize("field", ["name", "operator", "city"])
def test_markup_sql_and_formulas_are_valid_text_kept_verbatim(text, field):
    """Text that looks like markup, SQL or a formula is a valid value and leaves validation as sent."""
    result = validate(_e("station_boot", **{field: text}), received_at=NOW)
    assert isinstance(result, StationBoot)
    assert result.to_wire()[field] == text


def test_a_valid_surrogate_pair_and_non_ascii_text_are_kept():
    """An escaped emoji (a valid surrogate pair) and raw UTF-8 are text, kept as sent."""
    for raw, name in [(_swap("station_boot", b"Alexanderplatz 1", b"\\ud83d\\ude00"), "\U0001f600"),
                      (_e("station_boot", name="Zürich Ladesäule ☀"), "Zürich Ladesäule ☀")]:  # fmt: skip
        result = validate(raw, received_at=NOW)
        assert isinstance(result, StationBoot) and result.name == name


def test_the_storable_limits_fit_the_sql_columns():
    """A meter and price at the contract's hard limits fit the energy and cost columns of sql/001_core.sql."""
    sql = (ROOT / "sql" / "001_core.sql").read_text()

    def numeric(column: str) -> tuple[int, int]:
        precision, scale = re.search(rf"\b{column}\s+numeric\((\d+),\s*(\d+)\)", sql).groups()
        return int(precision), int(scale)

    def fits(value: float, column: str) -> bool:
        precision, scale = numeric(column)
        return abs(value) < 10 ** (precision - scale)

    energy_kwh = STORABLE_METER_WH / 1000
    assert fits(energy_kwh, "energy_delivered_kwh")
    assert fits(energy_kwh * STORABLE_PRICE_EUR_PER_KWH, "cost_eur")
    assert fits(STORABLE_PRICE_EUR_PER_KWH, "price_eur_per_kwh")
    assert re.search(r"\bmeter_max_wh\s+bigint", sql) and STORABLE_METER_WH < 2**63
    loose = Limits(max_meter_wh=10**18, max_price_eur_per_kwh=10**6)  # an operator's too-generous settings
    for event in (make_event("session_progress", meter_wh=STORABLE_METER_WH + 1),
                  make_event("session_started", price_eur_per_kwh=STORABLE_PRICE_EUR_PER_KWH + 1)):  # fmt: skip
        result = validate(encode(event), received_at=NOW, limits=loose)
        assert isinstance(result, Rejection) and result.reason == Reason.OUT_OF_RANGE


def test_the_bridge_dead_letters_every_kind_and_a_clean_event_behind_them_lands():
    """Hostile records on one partition are dead-lettered in order; the clean event after them is batched."""
    h = Harness(batch_max_events=1)
    clean = _e("session_started")
    records = [Record(i, b"ST-0001", value, TS) for i, (_, value, _) in enumerate(HOSTILE)]
    records.append(Record(len(HOSTILE), b"ST-0001", b'{"a": 1}', 2**62))  # a CreateTime past year 9999
    records.append(Record(len(HOSTILE) + 1, b"ST-0001", clean, TS))
    h.consumer.queue[TP("ev.session.started", 0)] = records
    h.run(steps=len(records) + 2)  # the harness polls batch_max_events records per step
    letters = [parse_record(value) for _, _, value, _ in h.producer.sent]
    assert [r["reason"] for r in letters] == [str(r) for _, _, r in HOSTILE] + [str(Reason.MISSING_FIELD)]
    assert [r["original"] for r in letters[: len(HOSTILE)]] == [v or b"" for _, v, _ in HOSTILE]
    assert h.bridge.stats.valid == 1 and len(h.batch_ids("persist")) == 1
    h.complete(h.batch_ids("persist")[0])
    h.run(steps=5)
    assert h.consumer.committed[("ev.session.started", 0)] == len(HOSTILE) + 2


def test_a_crash_inside_validation_is_dead_lettered_not_raised(monkeypatch):
    """Should validation raise, the record is dead-lettered as internal_error and the stream goes on."""

    def broken(raw, **_):
        raise RuntimeError("a bug")

    monkeypatch.setattr("evmonitor.bridge.bridge.validate", broken)
    result = check_record(b"{}", NOW, Limits())
    assert isinstance(result, Rejection) and result.reason == Reason.INTERNAL_ERROR and "a bug" in result.detail


# --- hypothesis: nothing escapes ----------------------------------------------------------------

def _handle(value: bytes | None) -> None:
    """What the bridge does with one record, minus the I/O: a verdict, then a dead letter or a wire event."""
    result = check_record(value, NOW, Limits())
    if isinstance(result, Rejection):
        assert result.reason != Reason.INTERNAL_ERROR, result.detail
        letter = deadletter_record(reason=result.reason, detail=result.detail, original=value or b"",
                                   source=Source("t", 0, 0, b"\xff key"), received_at=NOW)  # fmt: skip
        assert parse_record(letter)["original"] == (value or b"")
    else:
        json.dumps(result.to_wire()).encode("utf-8")  # what tasks carry: always encodable


# any code point, lone surrogates included (the JSON encoder escapes them as \udXXX)
_ANY_TEXT = st.text(st.characters() | st.characters(categories=["Cs"]), max_size=12)
_NUMBERS = (st.integers() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats()
            | st.sampled_from([2**31, 2**63, 10**19, 1e308, -0.0]))  # fmt: skip
_JSONISH = st.recursive(
    st.none() | st.booleans() | _NUMBERS | _ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_ANY_TEXT, inner, max_size=4),
    max_leaves=16,
)
_FIELDS = ["event_id", "event_type", "schema_version", "timestamp", "station_id", "name", "latitude",
           "connector_count", "connector_id", "status", "error_code", "heartbeat", "info", "session_id",
           "meter_start_wh", "meter_wh", "meter_stop_wh", "power_kw", "price_eur_per_kwh", "id_tag",
           "stop_reason", "soc_percent", "x_extra"]  # fmt: skip


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.none() | st.binary(max_size=600))
def test_arbitrary_bytes_end_as_an_event_or_a_dead_letter(value):
    """Any record value (or none) ends as an event or a dead letter with its bytes, never an exception."""
    _handle(value)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(TYPES), st.dictionaries(st.sampled_from(_FIELDS), _JSONISH, max_size=4), st.booleans(),
       st.integers(0, 1200))  # fmt: skip
def test_arbitrary_json_in_any_field_ends_as_an_event_or_a_dead_letter(event_type, changes, ascii_only, depth):
    """Any JSON-ish values (surrogates, huge numbers, deep nesting) in any fields end as an event or a dead letter."""
    event = make_event(event_type)
    event.update(changes)
    if depth:
        event["x_extra"] = json.loads("[" * depth + "]" * depth) if depth < 900 else None
    try:
        raw = json.dumps(event, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    except (ValueError, RecursionError):  # NaN is still written by json.dumps; only absurd depth fails
        return
    _handle(raw)
    _handle(raw.replace(b"Z", b"+25:00"))


@given(st.sampled_from(TYPES), st.sampled_from(_FIELDS), st.sampled_from(["1" * 4400, "1e99999", "-1e99999",
       "[" * 5000 + "]" * 5000, '"\\ud800"', '"\\u0000"', "true", "{}", "[]", '""', "null", "1" * 4300]))  # fmt: skip
def test_raw_json_bombs_in_any_field_end_as_an_event_or_a_dead_letter(event_type, field, raw_json):
    """Parser bombs (long digits, huge exponents, deep nesting) put in any field are handled."""
    event = make_event(event_type)
    event[field] = "__BOMB__"
    _handle(json.dumps(event).replace('"__BOMB__"', raw_json).encode())


def test_an_absurd_kafka_timestamp_falls_back_to_the_wall_clock():
    """A record whose CreateTime is past year 9999 is still judged, against the bridge's own clock."""
    h = Harness()
    h.consumer.queue[TP("ev.station.status", 0)] = [Record(0, b"ST-0001", _e("station_status"), 2**62)]
    h.run()
    assert h.bridge.stats.valid == 1 and h.bridge.stats.rejected == {}
