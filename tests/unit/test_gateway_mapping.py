"""The OCPP 1.6 -> contract mapping, pure: no socket, no Kafka, no database."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evmonitor.contract import EventType, decode
from evmonitor.errors import InvalidEvent, Reason
from evmonitor.gateway import mapping
from evmonitor.gateway.mapping import ChargerProfile, Transaction
from evmonitor.gateway.passwords import hash_password, verify_password

AT = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
PROFILE = ChargerProfile("CP-1", "Hauptbahnhof", "Stadtwerke", "Berlin", 52.5, 13.4, 150.0, 2, 0.59)
TX = Transaction(7, "CP-1", 1, 0.59)


def sampled(*samples: dict, at: str = "2026-03-01T11:50:00Z") -> dict:
    return {"connectorId": 1, "transactionId": 7, "meterValue": [{"timestamp": at, "sampledValue": list(samples)}]}


def progress(payload: dict) -> dict:
    (event,) = mapping.meter_values_events("CP-1", payload).events
    return event


def test_energy_register_units_wh_kwh_and_none():
    """Wh, kWh (any case) and an absent unit (Wh) give the same integer register."""
    assert progress(sampled({"value": "12345"}))["meter_wh"] == 12345
    assert progress(sampled({"value": "12345", "unit": "Wh"}))["meter_wh"] == 12345
    assert progress(sampled({"value": "12.345", "unit": "kWh"}))["meter_wh"] == 12345
    assert progress(sampled({"value": "12.345", "unit": "KWH"}))["meter_wh"] == 12345


def test_absent_measurand_is_the_energy_register_and_other_measurands_fill_their_fields():
    """No measurand = Energy.Active.Import.Register; power in W or kW, SoC, voltage and current read."""
    event = progress(sampled(
        {"value": "5000"},
        {"value": "11000", "measurand": "Power.Active.Import", "unit": "W"},
        {"value": "42", "measurand": "SoC", "unit": "Percent"},
        {"value": "230.1", "measurand": "Voltage", "unit": "V"},
        {"value": "16", "measurand": "Current.Import", "unit": "A"},
        {"value": "3", "measurand": "Temperature", "unit": "Celsius"},
    ))  # fmt: skip
    assert (event["meter_wh"], event["power_kw"], event["soc_percent"], event["voltage_v"], event["current_a"]) == (
        5000, 11.0, 42.0, 230.1, 16.0)  # fmt: skip
    assert progress(sampled({"value": "5000"}, {"value": "7.4", "measurand": "Power.Active.Import", "unit": "kW"}))["power_kw"] == 7.4


@pytest.mark.parametrize("context", ["Sample.Periodic", "Sample.Clock", "Transaction.Begin", "Transaction.End", "Trigger", None])
def test_every_context_is_a_reading(context):
    """Periodic, clock-aligned, transaction begin/end and triggered samples are all readings."""
    sample = {"value": "100", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    if context:
        sample["context"] = context
    assert progress(sampled(sample))["meter_wh"] == 100


def test_numbers_sent_as_numbers_and_phases_are_read_where_nothing_is_lost():
    """A JSON number for a string value is read; per-phase registers with no total are summed."""
    assert progress(sampled({"value": 1.5, "unit": "kWh"}))["meter_wh"] == 1500
    assert progress(sampled({"value": "10", "phase": "L1"}, {"value": "20", "phase": "L2"}, {"value": "30", "phase": "L3"}))["meter_wh"] == 60
    assert progress(sampled({"value": "99"}, {"value": "10", "phase": "L1"}))["meter_wh"] == 99


@pytest.mark.parametrize("sample, reason", [
    ({"value": "lots"}, Reason.INVALID_VALUE),
    ({"value": "100", "unit": "varh"}, Reason.INVALID_VALUE),
    ({"value": "-5"}, Reason.OUT_OF_RANGE),
    ({"value": "NaN"}, Reason.NON_FINITE),
    ({"value": True}, Reason.WRONG_TYPE),
    ({"value": "abc", "format": "SignedData"}, Reason.INVALID_VALUE),
    ({"unit": "Wh"}, Reason.MISSING_FIELD),
])  # fmt: skip
def test_an_unreadable_reading_is_reported_and_the_others_are_kept(sample, reason):
    """One unreadable meterValue becomes an Unreadable with a reason; its neighbours still map."""
    payload = sampled({"value": "100"})
    payload["meterValue"].append({"timestamp": "2026-03-01T11:55:00Z", "sampledValue": [sample]})
    readings = mapping.meter_values_events("CP-1", payload)
    assert [e["meter_wh"] for e in readings.events] == [100]
    assert [u.reason for u in readings.unreadable] == [reason] and "meterValue[1]" in readings.unreadable[0].detail


def test_meter_values_without_a_transaction_describe_no_session():
    """A MeterValues without transactionId maps to nothing (no session to attach it to)."""
    payload = sampled({"value": "100"})
    del payload["transactionId"]
    assert mapping.meter_values_events("CP-1", payload) == mapping.Readings([], [])


def test_timestamps_are_lenient_but_must_be_times():
    """Z, offsets, any fraction and a missing offset (read as UTC) parse; garbage is unreadable."""
    want = datetime(2026, 3, 1, 11, 50, 0, 123456, tzinfo=timezone.utc)
    for text in ("2026-03-01T11:50:00.123456789Z", "2026-03-01T12:50:00.123456+01:00", "2026-03-01T11:50:00.123456"):
        assert mapping.parse_timestamp(text, "t") == want
    with pytest.raises(InvalidEvent):
        mapping.parse_timestamp("yesterday", "t")


def test_every_mapped_event_passes_the_contract():
    """Boot, status, heartbeat, start, progress, stop and offline events all validate as the bridge will."""
    start = mapping.parse_start({"connectorId": 1, "idTag": "TAG-0042", "meterStart": 10, "timestamp": "2026-03-01T11:00:00Z"})
    events = [
        mapping.boot_event(PROFILE, {"chargePointVendor": "ABB", "chargePointModel": "T54"}, unique_id="u1", received_at=AT),
        mapping.status_event("CP-1", {"connectorId": 1, "status": "Charging", "errorCode": "NoError"}, unique_id="u2", received_at=AT),
        mapping.heartbeat_event("CP-1", status=mapping.ChargePointStatus.AVAILABLE, error_code=mapping.ChargePointErrorCode.NO_ERROR,
                                unique_id="u3", received_at=AT),
        mapping.session_started_event(start, TX),
        progress(sampled({"value": "500"})),
        *mapping.stop_events("CP-1", {"transactionId": 7, "meterStop": 900, "timestamp": "2026-03-01T11:59:00Z"}, TX).events,
        mapping.offline_event("CP-1", connection_id="c1", closed_at=AT, reason="code 1006"),
    ]  # fmt: skip
    decoded = [decode(json.dumps(e).encode(), received_at=AT) for e in events]
    assert [d.event_type for d in decoded] == [EventType.STATION_BOOT, EventType.STATION_STATUS, EventType.STATION_STATUS,
                                               EventType.SESSION_STARTED, EventType.SESSION_PROGRESS,
                                               EventType.SESSION_COMPLETED, EventType.STATION_STATUS]  # fmt: skip
    assert "TAG-0042" not in json.dumps(events[3]) and decoded[3].id_tag_hash  # pseudonymised before Kafka
    assert decoded[5].stop_reason == "Local"  # OCPP: an absent reason means Local


def test_stop_reads_its_transaction_data_and_needs_a_minted_transaction():
    """StopTransaction's transactionData become readings before the completion; an unknown id is unreadable."""
    payload = {"transactionId": 7, "meterStop": "0.9", "timestamp": "2026-03-01T11:59:00Z", "reason": "Remote",
               "transactionData": [{"timestamp": "2026-03-01T11:58:00Z", "sampledValue": [{"value": "0.85", "unit": "kWh"}]}]}
    readings = mapping.stop_events("CP-1", payload, TX)
    assert [e["event_type"] for e in readings.events] == ["session_progress", "session_completed"]
    assert readings.events[0]["meter_wh"] == 850 and readings.events[1]["meter_stop_wh"] == 1  # meterStop is Wh
    with pytest.raises(InvalidEvent):
        mapping.stop_events("CP-1", payload, None)


def test_ids_depend_on_charger_and_content_only():
    """Same charger and message -> same session and event ids; another charger or reading -> others."""
    assert mapping.session_id("CP-1", 7) == mapping.session_id("CP-1", 7) != mapping.session_id("CP-2", 7)
    a, b = progress(sampled({"value": "1"})), progress(sampled({"value": "1"}))
    assert a["event_id"] == b["event_id"] != progress(sampled({"value": "2"}))["event_id"]
    timed = {"connectorId": 1, "status": "Charging", "timestamp": "2026-03-01T11:00:00Z"}
    assert (mapping.status_event("CP-1", timed, unique_id="x", received_at=AT)["event_id"]
            == mapping.status_event("CP-1", timed, unique_id="y", received_at=AT.replace(minute=5))["event_id"])  # fmt: skip


def test_a_vendor_error_code_is_kept_in_info_and_an_unknown_status_is_unreadable():
    """A non-OCPP errorCode maps to OtherError with the code in info; a non-OCPP status raises."""
    event = mapping.status_event("CP-1", {"connectorId": 0, "status": "faulted", "errorCode": "E42"}, unique_id="u", received_at=AT)
    assert (event["status"], event["error_code"], event["info"]) == ("Faulted", "OtherError", "E42")
    with pytest.raises(InvalidEvent):
        mapping.status_event("CP-1", {"connectorId": 0, "status": "Sleeping"}, unique_id="u", received_at=AT)


@given(st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                    max_leaves=20))  # fmt: skip
def test_arbitrary_payloads_map_or_raise_invalid_event(payload):
    """Whatever a charger sends, the mapping returns readings or raises InvalidEvent, nothing else."""
    for read in (lambda: mapping.meter_values_events("CP-1", payload), lambda: mapping.stop_events("CP-1", payload, TX),
                 lambda: mapping.parse_start(payload),
                 lambda: mapping.status_event("CP-1", payload, unique_id="u", received_at=AT)):  # fmt: skip
        try:
            read()
        except InvalidEvent:
            pass


def test_id_tags_are_redacted_from_log_lines():
    """Both the wire form and the library's repr of a payload lose their idTag value."""
    line = '''[2,"1","StartTransaction",{"idTag":"RFID-1","meterStart":1}] payload={'idTag': 'RFID-2'}'''
    redacted = mapping.redact_id_tags(line)
    assert "RFID-1" not in redacted and "RFID-2" not in redacted and "meterStart" in redacted


def test_passwords_are_slow_salted_hashes():
    """A stored hash verifies its password only, and differs per salt."""
    secret = "correct-horse-battery-staple"  # long enough that a random salt never contains it by chance
    stored = hash_password(secret)
    assert stored.startswith("scrypt$") and secret not in stored
    assert verify_password(secret, stored) and not verify_password(secret + "!", stored)
    assert not verify_password(secret, "junk") and hash_password(secret) != stored


def test_the_ocpp_fleet_sends_registers_in_wh_kwh_and_without_unit_that_map_back_exactly():
    """The simulator's MeterValues rotate Wh, kWh and no unit; the gateway's mapping reads each to the planned Wh."""
    from ocpp.charge_point import serialize_as_dict, snake_to_camel_case

    from evmonitor.stack.ocpp_fleet import to_call

    planned = {"event_type": "session_progress", "timestamp": "2026-03-01T11:50:00.250Z", "station_id": "CP-1",
               "session_id": "s", "connector_id": 2, "meter_wh": 123_456_789, "power_kw": 7.36, "soc_percent": 55.5,
               "voltage_v": 230.0, "current_a": 32.0}  # fmt: skip
    units = set()
    for index in range(3):
        payload = snake_to_camel_case(serialize_as_dict(to_call(planned, transaction_id=7, index=index)))
        payload = {k: v for k, v in payload.items() if v is not None}
        units.add(payload["meterValue"][0]["sampledValue"][0].get("unit"))
        event = progress(payload)
        assert (event["meter_wh"], event["power_kw"], event["soc_percent"], event["connector_id"]) == (123_456_789, 7.36, 55.5, 2)
    assert units == {"Wh", "kWh", None}


def test_basic_auth_needs_the_charge_point_id_as_user():
    """The password counts only with the charger's own id as user; malformed headers give none."""
    import base64

    from evmonitor.gateway.server import _basic_password

    def header(text: str) -> str:
        return "Basic " + base64.b64encode(text.encode()).decode()

    assert _basic_password(header("CP-1:pa:ss"), "CP-1") == "pa:ss"
    assert _basic_password(header("CP-2:pass"), "CP-1") is None
    assert _basic_password(header("CP-1"), "CP-1") is None
    assert _basic_password("Basic !!!", "CP-1") is None and _basic_password("Bearer x", "CP-1") is None
    assert _basic_password(None, "CP-1") is None
