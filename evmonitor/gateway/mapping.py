"""OCPP 1.6J payloads -> events of our contract (../shared/DESIGN.md). Pure: no socket, clock or DB.

Every function takes the payload exactly as the charger sent it (camelCase JSON, already
parsed) plus what OCPP does not carry (the registry's `ChargerProfile`, a minted transaction,
the time of receipt) and returns event dicts ready for Kafka. What cannot be read raises
`InvalidEvent` (or, for one reading among several, comes back as an `Unreadable`): the server
dead-letters it with the charger id and the raw frame.

Real chargers deviate from the schema, so reading is lenient where nothing is lost: numbers
sent as numbers or numeric strings, units in any case, a missing measurand or unit meaning
Energy.Active.Import.Register in Wh (OCPP 1.6 §7.31), every reading context a reading. A
fractional Wh is rounded to the nearest Wh (half to even): the contract's registers are integers.

Event ids: a message that carries the station's own timestamp (StartTransaction, MeterValues,
StopTransaction, a timed StatusNotification) maps to events whose ids depend only on the
charger and the message content, so a retried message is the same event and the fold ignores
it. A message without one (BootNotification, Heartbeat, an untimed StatusNotification) is
stamped with its time of receipt, and its id includes that time and the message's unique id.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from evmonitor.contract import (
    SCHEMA_VERSION,
    ChargePointErrorCode,
    ChargePointStatus,
    EventType,
    StopReason,
    hash_id_tag,
)
from evmonitor.errors import InvalidEvent, Reason
from evmonitor.names import StatusInfo

__all__ = [
    "ChargerProfile",
    "Measurand",
    "Readings",
    "StartRequest",
    "Transaction",
    "Unreadable",
    "boot_event",
    "event_id",
    "heartbeat_event",
    "meter_values_events",
    "offline_event",
    "parse_start",
    "parse_timestamp",
    "redact_id_tags",
    "session_id",
    "session_started_event",
    "status_event",
    "stop_events",
    "transaction_id_of",
]

# Fixed forever: session and event ids derived from it are stored in every sink.
NAMESPACE = uuid.UUID("6f0c2a4e-5b1d-4c51-9f57-0e2f3cbb1a16")

MAX_CONNECTOR_ID = 99  # the contract's bound


class Measurand(StrEnum):
    """OCPP 1.6 Measurand values the gateway reads (others are ignored)."""

    ENERGY_ACTIVE_IMPORT_REGISTER = "Energy.Active.Import.Register"
    POWER_ACTIVE_IMPORT = "Power.Active.Import"
    SOC = "SoC"
    VOLTAGE = "Voltage"
    CURRENT_IMPORT = "Current.Import"


# unit (lower case) -> factor to our unit, per measurand; None is the OCPP default unit
_UNITS: dict[Measurand, dict[str | None, Decimal]] = {
    Measurand.ENERGY_ACTIVE_IMPORT_REGISTER: {None: Decimal(1), "wh": Decimal(1), "kwh": Decimal(1000)},
    Measurand.POWER_ACTIVE_IMPORT: {None: Decimal("0.001"), "w": Decimal("0.001"), "kw": Decimal(1)},
    Measurand.SOC: {None: Decimal(1), "percent": Decimal(1)},
    Measurand.VOLTAGE: {None: Decimal(1), "v": Decimal(1)},
    Measurand.CURRENT_IMPORT: {None: Decimal(1), "a": Decimal(1)},
}
_MEASURANDS = {m.value.lower(): m for m in Measurand}
# single-phase readings that add up to the whole (line-to-neutral and line-to-line ones do not)
_PHASES = ("l1", "l2", "l3")
# what the phases add up to when a charger reports only per-phase values
_ADDITIVE = (Measurand.ENERGY_ACTIVE_IMPORT_REGISTER, Measurand.POWER_ACTIVE_IMPORT)


@dataclass(frozen=True, slots=True)
class ChargerProfile:
    """What the registry knows about a charger and OCPP does not carry."""

    id: str
    name: str
    operator: str
    city: str
    latitude: float
    longitude: float
    max_power_kw: float
    connector_count: int
    price_eur_per_kwh: float


@dataclass(frozen=True, slots=True)
class StartRequest:
    """A readable StartTransaction.req."""

    connector_id: int
    id_tag: str
    meter_start_wh: int
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class Transaction:
    """A transaction id the gateway minted, with what the session needs later."""

    id: int
    charger_id: str
    connector_id: int
    price_eur_per_kwh: float


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A part of a message that could not be read: dead-letter it, keep the rest."""

    reason: Reason
    detail: str


@dataclass(frozen=True, slots=True)
class Readings:
    """The events read from a message, and what of it could not be read."""

    events: list[dict[str, Any]]
    unreadable: list[Unreadable]


# --- ids and time ---------------------------------------------------------------------------------


def session_id(charger_id: str, transaction_id: int) -> str:
    """The session of a transaction: the same charger and transaction id, the same session."""
    return str(uuid.uuid5(NAMESPACE, f"session\x1f{charger_id}\x1f{transaction_id}"))


def event_id(charger_id: str, *parts: Any) -> str:
    """A deterministic event id from the charger and what identifies the message."""
    text = "\x1f".join([charger_id, *(_canonical(p) for p in parts)])
    return str(uuid.uuid5(NAMESPACE, text))


def _canonical(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _wire_time(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})?$")


def parse_timestamp(value: Any, field: str) -> datetime:
    """An OCPP dateTime; lenient: any fraction, `+hhmm`, and no offset at all read as UTC (OCPP's zone)."""
    if not isinstance(value, str) or not _TIMESTAMP.match(value.strip()):
        raise InvalidEvent(Reason.INVALID_VALUE, f"{field}: not an OCPP dateTime: {str(value)[:40]!r}")
    text = value.strip().replace("t", "T").replace(" ", "T")
    if text[-1] in "Zz":
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:  # Python reads at most 6 fractional digits
        digits = re.match(r"\d+", rest).group(0)  # type: ignore[union-attr]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest[len(digits):]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidEvent(Reason.INVALID_VALUE, f"{field}: not a valid date/time: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


# --- numbers --------------------------------------------------------------------------------------


def _decimal(value: Any, field: str) -> Decimal:
    """A finite number sent as a JSON number or a numeric string."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidEvent(Reason.WRONG_TYPE, f"{field}: expected a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidEvent(Reason.NON_FINITE, f"{field}: {value}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise InvalidEvent(Reason.INVALID_VALUE, f"{field}: not a number: {str(value)[:40]!r}") from None
    if not number.is_finite():
        raise InvalidEvent(Reason.NON_FINITE, f"{field}: {value}")
    return number


def _wh(value: Decimal, field: str) -> int:
    if value < 0:
        raise InvalidEvent(Reason.OUT_OF_RANGE, f"{field}: negative energy register {value}")
    return int(value.to_integral_value(rounding=ROUND_HALF_EVEN))


def _int(value: Any, field: str) -> int:
    number = _decimal(value, field)
    if number != number.to_integral_value():
        raise InvalidEvent(Reason.INVALID_VALUE, f"{field}: not an integer: {value!r}")
    return int(number)


def _connector(payload: dict[str, Any], *, session: bool) -> int:
    if "connectorId" not in payload:
        raise InvalidEvent(Reason.MISSING_FIELD, "connectorId is missing")
    connector = _int(payload["connectorId"], "connectorId")
    if not (1 if session else 0) <= connector <= MAX_CONNECTOR_ID:
        raise InvalidEvent(Reason.OUT_OF_RANGE, f"connectorId {connector} out of range")
    return connector


def _require(payload: Any, *names: str) -> None:
    if not isinstance(payload, dict):
        raise InvalidEvent(Reason.NOT_AN_OBJECT, "payload is not a JSON object")
    for name in names:
        if payload.get(name) is None:
            raise InvalidEvent(Reason.MISSING_FIELD, f"{name} is missing")


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()[:200]
    return None


def _enum(kind: type[StrEnum], value: Any, field: str) -> Any:
    if isinstance(value, str):
        for member in kind:
            if member.value.lower() == value.strip().lower():
                return member
    raise InvalidEvent(Reason.INVALID_VALUE, f"{field}: {str(value)[:40]!r} is not an OCPP 1.6 {kind.__name__}")


def _envelope(event_type: EventType, charger_id: str, timestamp: datetime, eid: str) -> dict[str, Any]:
    return {
        "event_id": eid,
        "event_type": str(event_type),
        "schema_version": SCHEMA_VERSION,
        "timestamp": _wire_time(timestamp),
        "station_id": charger_id,
    }


# --- station messages -----------------------------------------------------------------------------


def boot_event(profile: ChargerProfile, payload: dict[str, Any], *, unique_id: str, received_at: datetime) -> dict[str, Any]:
    """BootNotification -> `station_boot`: place, power and price from the registry, the rest from the charger."""
    _require(payload)
    event = _envelope(
        EventType.STATION_BOOT, profile.id, received_at,
        event_id(profile.id, "BootNotification", unique_id, _wire_time(received_at)),
    )  # fmt: skip
    event.update(
        name=profile.name,
        operator=profile.operator,
        city=profile.city,
        latitude=profile.latitude,
        longitude=profile.longitude,
        max_power_kw=profile.max_power_kw,
        connector_count=profile.connector_count,
        price_eur_per_kwh=profile.price_eur_per_kwh,
    )
    for ours, theirs in (("vendor", "chargePointVendor"), ("model", "chargePointModel"), ("firmware_version", "firmwareVersion")):
        value = _text(payload.get(theirs))
        if value is not None:
            event[ours] = value
    return event


def status_event(charger_id: str, payload: dict[str, Any], *, unique_id: str, received_at: datetime) -> dict[str, Any]:
    """StatusNotification -> `station_status` (connector 0 is the whole station)."""
    _require(payload, "connectorId", "status")
    connector = _connector(payload, session=False)
    status = _enum(ChargePointStatus, payload["status"], "status")
    raw_error = payload.get("errorCode") or ChargePointErrorCode.NO_ERROR
    try:
        error_code = _enum(ChargePointErrorCode, raw_error, "errorCode")
        unknown_error = None
    except InvalidEvent:  # a vendor's own code: kept in info, reported as OtherError
        error_code, unknown_error = ChargePointErrorCode.OTHER_ERROR, _text(str(raw_error))
    if payload.get("timestamp") is not None:
        timestamp = parse_timestamp(payload["timestamp"], "timestamp")
        eid = event_id(charger_id, "StatusNotification", payload)
    else:
        timestamp = received_at
        eid = event_id(charger_id, "StatusNotification", payload, unique_id, _wire_time(received_at))
    event = _envelope(EventType.STATION_STATUS, charger_id, timestamp, eid)
    event.update(connector_id=connector, status=str(status), error_code=str(error_code))
    info = " ".join(
        part for part in (_text(payload.get("info")), _text(payload.get("vendorErrorCode")), unknown_error) if part
    )
    if info:
        event["info"] = info[:500]
    return event


def heartbeat_event(
    charger_id: str,
    *,
    status: ChargePointStatus,
    error_code: ChargePointErrorCode,
    unique_id: str,
    received_at: datetime,
) -> dict[str, Any]:
    """Heartbeat -> a `station_status` heartbeat for the whole station, with its last known status."""
    eid = event_id(charger_id, "Heartbeat", unique_id, _wire_time(received_at))
    event = _envelope(EventType.STATION_STATUS, charger_id, received_at, eid)
    event.update(connector_id=0, status=str(status), error_code=str(error_code), heartbeat=True)
    return event


def offline_event(charger_id: str, *, connection_id: str, closed_at: datetime, reason: str) -> dict[str, Any]:
    """A closed connection: the whole station is unavailable until it connects again.

    `info` starts with `StatusInfo.CONNECTION_CLOSED` (then the close reason), so the outage ledger
    can tell this Unavailable from one the charger sent.
    """
    eid = event_id(charger_id, "ConnectionClosed", connection_id)
    event = _envelope(EventType.STATION_STATUS, charger_id, closed_at, eid)
    event.update(
        connector_id=0,
        status=str(ChargePointStatus.UNAVAILABLE),
        error_code=str(ChargePointErrorCode.NO_ERROR),
        info=f"{StatusInfo.CONNECTION_CLOSED}: {reason}"[:500],
    )
    return event


# --- transactions ---------------------------------------------------------------------------------


def parse_start(payload: dict[str, Any]) -> StartRequest:
    """A StartTransaction.req as values, or `InvalidEvent` if it cannot be read."""
    _require(payload, "connectorId", "idTag", "meterStart", "timestamp")
    id_tag = payload["idTag"]
    if not isinstance(id_tag, str) or not 1 <= len(id_tag) <= 64:
        raise InvalidEvent(Reason.WRONG_TYPE, "idTag must be a string of 1..64 characters")
    return StartRequest(
        connector_id=_connector(payload, session=True),
        id_tag=id_tag,
        meter_start_wh=_wh(_decimal(payload["meterStart"], "meterStart"), "meterStart"),
        timestamp=parse_timestamp(payload["timestamp"], "timestamp"),
    )


def transaction_id_of(payload: Any) -> int | None:
    """The transactionId of a message, if it has a readable one."""
    if not isinstance(payload, dict) or payload.get("transactionId") is None:
        return None
    try:
        return _int(payload["transactionId"], "transactionId")
    except InvalidEvent:
        return None


def session_started_event(start: StartRequest, transaction: Transaction, *, id_tag_key: bytes = b"") -> dict[str, Any]:
    """StartTransaction -> `session_started`.

    The id tag leaves the gateway only as its keyed hash (`hash_id_tag`), so not even Kafka holds
    it in clear; the contract hashes the `id_tag` field once more on entry, which keeps one
    stable pseudonym per tag.
    """
    eid = event_id(transaction.charger_id, "StartTransaction", transaction.id)
    event = _envelope(EventType.SESSION_STARTED, transaction.charger_id, start.timestamp, eid)
    event.update(
        session_id=session_id(transaction.charger_id, transaction.id),
        connector_id=start.connector_id,
        meter_start_wh=start.meter_start_wh,
        price_eur_per_kwh=transaction.price_eur_per_kwh,
        id_tag=hash_id_tag(start.id_tag, id_tag_key),
    )
    return event


def meter_values_events(charger_id: str, payload: dict[str, Any]) -> Readings:
    """MeterValues -> one `session_progress` per sampled register reading of a transaction.

    A MeterValues without a transactionId describes no session and yields nothing. One
    unreadable meterValue is reported and the others are still read.
    """
    _require(payload, "connectorId")
    if payload.get("transactionId") is None:
        return Readings([], [])
    connector = _connector(payload, session=True)
    transaction_id = _int(payload["transactionId"], "transactionId")
    return _readings(charger_id, session_id(charger_id, transaction_id), connector, payload.get("meterValue"))


def stop_events(charger_id: str, payload: dict[str, Any], transaction: Transaction | None) -> Readings:
    """StopTransaction (and its transactionData) -> its readings, then `session_completed`.

    `transaction` is what the gateway minted for `transactionId` (StopTransaction names no
    connector); None when the gateway never minted that id, which makes the message unreadable.
    """
    _require(payload, "transactionId", "meterStop", "timestamp")
    transaction_id = _int(payload["transactionId"], "transactionId")
    if transaction is None:
        raise InvalidEvent(Reason.INVALID_VALUE, f"transactionId {transaction_id} was not issued to {charger_id}")
    meter_stop = _wh(_decimal(payload["meterStop"], "meterStop"), "meterStop")
    timestamp = parse_timestamp(payload["timestamp"], "timestamp")
    reason = StopReason.LOCAL  # OCPP 1.6: an absent reason means Local
    if payload.get("reason") is not None:
        try:
            reason = _enum(StopReason, payload["reason"], "reason")
        except InvalidEvent:
            reason = StopReason.OTHER
    sid = session_id(charger_id, transaction.id)
    readings = _readings(charger_id, sid, transaction.connector_id, payload.get("transactionData"))
    eid = event_id(charger_id, "StopTransaction", transaction.id, meter_stop, _wire_time(timestamp), str(reason))
    event = _envelope(EventType.SESSION_COMPLETED, charger_id, timestamp, eid)
    event.update(session_id=sid, connector_id=transaction.connector_id, meter_stop_wh=meter_stop, stop_reason=str(reason))
    return Readings([*readings.events, event], readings.unreadable)


def _readings(charger_id: str, sid: str, connector: int, meter_values: Any) -> Readings:
    if meter_values is None:
        return Readings([], [])
    if not isinstance(meter_values, list):
        raise InvalidEvent(Reason.WRONG_TYPE, "meterValue must be a list")
    events: list[dict[str, Any]] = []
    unreadable: list[Unreadable] = []
    for index, meter_value in enumerate(meter_values):
        try:
            event = _progress_event(charger_id, sid, connector, meter_value)
        except InvalidEvent as exc:
            unreadable.append(Unreadable(exc.reason, f"meterValue[{index}]: {exc.detail}"))
            continue
        if event is not None:
            events.append(event)
    return Readings(events, unreadable)


def _progress_event(charger_id: str, sid: str, connector: int, meter_value: Any) -> dict[str, Any] | None:
    _require(meter_value, "timestamp", "sampledValue")
    timestamp = parse_timestamp(meter_value["timestamp"], "timestamp")
    samples = meter_value["sampledValue"]
    if not isinstance(samples, list):
        raise InvalidEvent(Reason.WRONG_TYPE, "sampledValue must be a list")
    values = _sampled_values(samples)
    energy = values.get(Measurand.ENERGY_ACTIVE_IMPORT_REGISTER)
    if energy is None:
        return None  # no register reading: nothing a session row can use
    event = _envelope(
        EventType.SESSION_PROGRESS, charger_id, timestamp,
        # the reading itself, not the message: the same reading in MeterValues and in the
        # StopTransaction's transactionData is one event
        event_id(charger_id, "reading", sid, meter_value),
    )  # fmt: skip
    power = values.get(Measurand.POWER_ACTIVE_IMPORT)
    # the contract requires power_kw; a charger that does not measure it reports none drawn
    event.update(
        session_id=sid,
        connector_id=connector,
        meter_wh=_wh(energy, "Energy.Active.Import.Register"),
        power_kw=float(max(power, Decimal(0))) if power is not None else 0.0,
    )
    for measurand, name in ((Measurand.SOC, "soc_percent"), (Measurand.VOLTAGE, "voltage_v"), (Measurand.CURRENT_IMPORT, "current_a")):
        if measurand in values:
            event[name] = float(values[measurand])
    return event


def _sampled_values(samples: list[Any]) -> dict[Measurand, Decimal]:
    """Per measurand read: the value without phase, else the sum of phases L1..L3."""
    whole: dict[Measurand, Decimal] = {}
    phases: dict[Measurand, dict[str, Decimal]] = {}
    for sample in samples:
        if not isinstance(sample, dict) or "value" not in sample:
            raise InvalidEvent(Reason.MISSING_FIELD, "sampledValue entry without value")
        name = sample.get("measurand") or Measurand.ENERGY_ACTIVE_IMPORT_REGISTER.value
        measurand = _MEASURANDS.get(str(name).strip().lower())
        if measurand is None:
            continue  # a measurand we do not use
        if str(sample.get("format") or "Raw").lower() == "signeddata":
            raise InvalidEvent(Reason.INVALID_VALUE, f"{measurand}: signed data cannot be read")
        unit = sample.get("unit")
        factor = _UNITS[measurand].get(str(unit).strip().lower() if unit is not None else None)
        if factor is None:
            raise InvalidEvent(Reason.INVALID_VALUE, f"{measurand}: unit {str(unit)[:20]!r} cannot be read")
        value = _decimal(sample["value"], str(measurand)) * factor
        phase = str(sample.get("phase") or "").strip().lower()
        if not phase:
            whole.setdefault(measurand, value)
        elif phase in _PHASES:
            phases.setdefault(measurand, {}).setdefault(phase, value)
    for measurand in _ADDITIVE:
        if measurand not in whole and measurand in phases:
            whole[measurand] = sum(phases[measurand].values(), Decimal(0))
    return whole


# --- logging --------------------------------------------------------------------------------------

_ID_TAG = re.compile(r"""(["']idTag["']\s*:\s*)(["'])(?:(?!\2).)*\2|(["']id_tag["']\s*:\s*)(["'])(?:(?!\4).)*\4""")


def redact_id_tags(text: str) -> str:
    """A log line with every idTag value replaced: tags identify people and never go to a log in clear."""
    return _ID_TAG.sub(lambda m: f"{m.group(1) or m.group(3)}\"***\"", text)
