"""The event contract: every valid shape passes, every rejection carries the right reason."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evmonitor.contract import Limits, Rejection, SessionStarted, decode, hash_id_tag, validate
from evmonitor.errors import InvalidEvent, Reason
from tests.factories import NOW, encode, iso, make_event

TYPES = ["station_boot", "station_status", "session_started", "session_progress", "session_completed"]


def verdict(raw: bytes, limits: Limits = Limits()) -> Reason | None:
    result = validate(raw, received_at=NOW, limits=limits)
    return result.reason if isinstance(result, Rejection) else None


@pytest.mark.parametrize("event_type", TYPES)
def test_valid_events_of_every_type_pass(event_type):
    """A well-formed event of each type validates and keeps its identity."""
    event = make_event(event_type)
    result = validate(encode(event), received_at=NOW)
    assert not isinstance(result, Rejection), result
    assert result.event_id == event["event_id"]
    assert result.event_type == event_type


def test_normalisation_utc_lowercase_uuid_and_hashed_id_tag():
    """Timestamps become UTC, UUIDs lower-case, and the clear id_tag never leaves validation."""
    event = make_event("session_started", timestamp="2026-11-24T13:00:00+01:00", id_tag="TAG-9")
    event["event_id"] = event["event_id"].upper()
    result = decode(encode(event), received_at=NOW)
    assert isinstance(result, SessionStarted)
    wire = result.to_wire()
    assert wire["timestamp"] == "2026-11-24T12:00:00Z"
    assert wire["event_id"] == event["event_id"].lower()
    assert "id_tag" not in wire and wire["id_tag_hash"] == hash_id_tag("TAG-9")
    assert "TAG-9" not in json.dumps(wire)


def test_extra_fields_are_accepted_and_dropped():
    """Producers may add optional fields (a compatible contract change); we ignore them."""
    event = make_event("station_status", firmware_channel="beta")
    assert "firmware_channel" not in decode(encode(event), received_at=NOW).to_wire()


def _without(event_type: str, field: str) -> bytes:
    event = make_event(event_type)
    del event[field]
    return encode(event)


CASES: list[tuple[str, bytes, Reason]] = [
    ("garbage", b"{not json", Reason.INVALID_JSON),
    ("truncated", encode(make_event("session_progress"))[:-7], Reason.INVALID_JSON),
    ("empty", b"", Reason.EMPTY_VALUE),
    ("not utf-8", b'{"event_type": "\xff\xfe"}', Reason.INVALID_TEXT),
    ("array", b"[1, 2]", Reason.NOT_AN_OBJECT),
    ("string", b'"hello"', Reason.NOT_AN_OBJECT),
    ("null", b"null", Reason.NOT_AN_OBJECT),
    ("missing event_id", _without("station_status", "event_id"), Reason.MISSING_FIELD),
    ("missing event_type", _without("station_status", "event_type"), Reason.MISSING_FIELD),
    ("missing meter", _without("session_progress", "meter_wh"), Reason.MISSING_FIELD),
    ("missing price", _without("station_boot", "price_eur_per_kwh"), Reason.MISSING_FIELD),
    ("string power", encode(make_event("session_progress", power_kw="22")), Reason.WRONG_TYPE),
    ("bool meter", encode(make_event("session_progress", meter_wh=True)), Reason.WRONG_TYPE),
    ("float meter", encode(make_event("session_completed", meter_stop_wh=1.5)), Reason.WRONG_TYPE),
    ("numeric timestamp", encode(make_event("station_status", timestamp=1764000000)), Reason.WRONG_TYPE),
    ("int station id", encode(make_event("station_status", station_id=7)), Reason.WRONG_TYPE),
    ("list event_type", encode({**make_event("station_status"), "event_type": ["x"]}), Reason.WRONG_TYPE),
    ("string schema_version", encode(make_event("station_status", schema_version="1")), Reason.WRONG_TYPE),
    ("unknown type", encode(make_event("session_paused")), Reason.UNKNOWN_EVENT_TYPE),
    ("schema 2", encode(make_event("station_status", schema_version=2)), Reason.UNSUPPORTED_SCHEMA_VERSION),
    ("schema 0", encode(make_event("station_status", schema_version=0)), Reason.UNSUPPORTED_SCHEMA_VERSION),
    ("bad status", encode(make_event("station_status", status="Exploded")), Reason.INVALID_VALUE),
    ("bad error code", encode(make_event("station_status", error_code="Oops")), Reason.INVALID_VALUE),
    ("bad stop reason", encode(make_event("session_completed", stop_reason="Bored")), Reason.INVALID_VALUE),
    ("bad uuid", encode(make_event("station_status", event_id="not-a-uuid")), Reason.INVALID_VALUE),
    ("naive timestamp", encode(make_event("station_status", timestamp="2026-11-24T12:00:00")), Reason.INVALID_VALUE),
    ("date only", encode(make_event("station_status", timestamp="2026-11-24")), Reason.INVALID_VALUE),
    ("negative meter", encode(make_event("session_progress", meter_wh=-5)), Reason.OUT_OF_RANGE),
    ("negative power", encode(make_event("session_progress", power_kw=-1.0)), Reason.OUT_OF_RANGE),
    ("latitude 200", encode(make_event("station_boot", latitude=200.0)), Reason.OUT_OF_RANGE),
    ("soc 150", encode(make_event("session_progress", soc_percent=150.0)), Reason.OUT_OF_RANGE),
    ("absurd power", encode(make_event("session_progress", power_kw=50_000.0)), Reason.OUT_OF_RANGE),
    ("absurd meter", encode(make_event("session_progress", meter_wh=10**15)), Reason.OUT_OF_RANGE),
    ("absurd price", encode(make_event("station_boot", price_eur_per_kwh=99.0)), Reason.OUT_OF_RANGE),
    ("empty station id", encode(make_event("station_status", station_id="")), Reason.OUT_OF_RANGE),
    ("long station id", encode(make_event("station_status", station_id="x" * 65)), Reason.OUT_OF_RANGE),
    ("session on connector 0", encode(make_event("session_started", connector_id=0)), Reason.OUT_OF_RANGE),
    ("NaN", encode(make_event("session_progress")).replace(b"48.5", b"NaN"), Reason.NON_FINITE),
    ("Infinity", encode(make_event("session_progress")).replace(b"48.5", b"Infinity"), Reason.NON_FINITE),
    ("years ahead", encode(make_event("station_status", timestamp=iso(NOW + timedelta(days=5 * 365)))),
     Reason.TIMESTAMP_OUT_OF_WINDOW),
    ("years ago", encode(make_event("station_status", timestamp=iso(NOW - timedelta(days=3 * 365)))),
     Reason.TIMESTAMP_OUT_OF_WINDOW),
    ("NUL in a name", encode(make_event("station_boot", name="Hall\x00e 3")), Reason.INVALID_VALUE),
    ("huge float", encode(make_event("session_progress")).replace(b"48.5", b"1e400"), Reason.NON_FINITE),
    ("deep nesting", b'{"event_type": ' + b"[" * 5000 + b"]" * 5000 + b"}", Reason.INVALID_JSON),
    ("oversized", encode(make_event("station_status", info="x" * 70_000)), Reason.TOO_LARGE),
]  # fmt: skip


@pytest.mark.parametrize("raw, reason", [(raw, reason) for _, raw, reason in CASES], ids=[c[0] for c in CASES])
def test_each_malformation_gets_its_reason(raw, reason):
    """Each kind of bad input is rejected with its own machine-readable reason."""
    assert verdict(raw) == reason


def test_every_reason_of_the_contract_is_exercised():
    """The table above covers every reason validation can give."""
    contract_reasons = set(Reason) - {Reason.SINK_REJECTED, Reason.INTERNAL_ERROR}  # given by sinks, the bridge
    assert contract_reasons <= {reason for _, _, reason in CASES}


def test_a_literal_backslash_u0000_is_text_not_nul():
    """A name containing the six characters \\u0000 (escaped backslash) is valid."""
    assert verdict(encode(make_event("station_boot", name="odd \\u0000 name"))) is None


def test_limits_are_settings():
    """A tighter payload limit or time window changes the verdict."""
    event = encode(make_event("station_status", timestamp=iso(NOW - timedelta(hours=2))))
    assert verdict(event) is None
    assert verdict(event, Limits(max_event_age=timedelta(hours=1))) == Reason.TIMESTAMP_OUT_OF_WINDOW
    assert verdict(event, Limits(max_payload_bytes=100)) == Reason.TOO_LARGE


def test_rejection_detail_names_the_field():
    """The human detail says which field is wrong."""
    result = validate(_without("session_progress", "meter_wh"), received_at=NOW)
    assert isinstance(result, Rejection) and "meter_wh" in result.detail


@given(st.binary(max_size=400))
def test_arbitrary_bytes_decode_or_raise_invalid_event(raw):
    """Any bytes either decode into an event or raise InvalidEvent: nothing else escapes."""
    try:
        decode(raw, received_at=NOW)
    except InvalidEvent as exc:
        assert isinstance(exc.reason, Reason)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=5),
                    max_leaves=20),
       st.sampled_from(TYPES), st.sampled_from(["meter_wh", "power_kw", "timestamp", "station_id", "status",
                                                 "connector_id", "session_id", "latitude", "price_eur_per_kwh"]))  # fmt: skip
def test_any_json_value_in_any_field_is_handled(value, event_type, field):
    """Replacing a field with any JSON value yields an event or a rejection, never a crash."""
    event = make_event(event_type)
    event[field] = value
    try:
        raw = json.dumps(event).encode()
    except ValueError:
        return
    result = validate(raw, received_at=NOW)
    assert isinstance(result, Rejection) or result.event_type == event_type
