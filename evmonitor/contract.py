"""The event contract of ../shared/DESIGN.md: one model per event type and one `validate`.

`validate(raw, received_at=..., limits=...)` is pure: it takes the bytes of a Kafka message and
the time the message was received (the record's own timestamp, so a replay validates the same
way) and returns either an `Event` or a `Rejection` carrying a machine-readable `Reason`.
Nothing here touches a socket, a clock or the environment.

Every valid event leaves here normalised: timestamps in UTC, UUIDs lower-case, prices rounded
to 4 decimals, unknown extra fields dropped, and `id_tag` replaced by `id_tag_hash` so that the
clear tag never reaches a queue, a table or an index.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Annotated, Any, Literal, Union
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from evmonitor.errors import InvalidEvent, Reason
from evmonitor.names import Topic

__all__ = [
    "ChargePointErrorCode",
    "ChargePointStatus",
    "Event",
    "EventType",
    "Limits",
    "Rejection",
    "SessionCompleted",
    "SessionProgress",
    "SessionStarted",
    "StationBoot",
    "StationStatus",
    "StopReason",
    "TOPIC_BY_TYPE",
    "decode",
    "hash_id_tag",
    "validate",
]

SCHEMA_VERSION = 1


class EventType(StrEnum):
    STATION_BOOT = "station_boot"
    STATION_STATUS = "station_status"
    SESSION_STARTED = "session_started"
    SESSION_PROGRESS = "session_progress"
    SESSION_COMPLETED = "session_completed"


TOPIC_BY_TYPE: dict[EventType, Topic] = {
    EventType.STATION_BOOT: Topic.STATION_STATUS,
    EventType.STATION_STATUS: Topic.STATION_STATUS,
    EventType.SESSION_STARTED: Topic.SESSION_STARTED,
    EventType.SESSION_PROGRESS: Topic.SESSION_PROGRESS,
    EventType.SESSION_COMPLETED: Topic.SESSION_COMPLETED,
}


class ChargePointStatus(StrEnum):
    """OCPP 1.6 ChargePointStatus."""

    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EVSE = "SuspendedEVSE"
    SUSPENDED_EV = "SuspendedEV"
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


class ChargePointErrorCode(StrEnum):
    """OCPP 1.6 ChargePointErrorCode."""

    CONNECTOR_LOCK_FAILURE = "ConnectorLockFailure"
    EV_COMMUNICATION_ERROR = "EVCommunicationError"
    GROUND_FAILURE = "GroundFailure"
    HIGH_TEMPERATURE = "HighTemperature"
    INTERNAL_ERROR = "InternalError"
    LOCAL_LIST_CONFLICT = "LocalListConflict"
    NO_ERROR = "NoError"
    OTHER_ERROR = "OtherError"
    OVER_CURRENT_FAILURE = "OverCurrentFailure"
    OVER_VOLTAGE = "OverVoltage"
    POWER_METER_FAILURE = "PowerMeterFailure"
    POWER_SWITCH_FAILURE = "PowerSwitchFailure"
    READER_FAILURE = "ReaderFailure"
    RESET_FAILURE = "ResetFailure"
    UNDER_VOLTAGE = "UnderVoltage"
    WEAK_SIGNAL = "WeakSignal"


class StopReason(StrEnum):
    """OCPP 1.6 Reason (StopTransaction)."""

    DE_AUTHORIZED = "DeAuthorized"
    EMERGENCY_STOP = "EmergencyStop"
    EV_DISCONNECTED = "EVDisconnected"
    HARD_RESET = "HardReset"
    LOCAL = "Local"
    OTHER = "Other"
    POWER_LOSS = "PowerLoss"
    REBOOT = "Reboot"
    REMOTE = "Remote"
    SOFT_RESET = "SoftReset"
    UNLOCK_COMMAND = "UnlockCommand"


# RFC 3339 date-time with a mandatory offset or Z (fractional seconds optional).
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def _rfc3339(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError("wrong_type", "timestamp must be an RFC 3339 string")
    if not _RFC3339.match(value):
        raise ValueError("timestamp must be RFC 3339 with an offset or Z")
    return value


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


# What the columns of sql/001_core.sql can hold, whatever the plausibility limits (`Limits`,
# settings) say: a valid event must never be refused by PostgreSQL, or it would poison a batch.
# A session's energy_delivered_kwh is numeric(14, 3) (< 10^11 kWh) and its cost_eur numeric(14, 2)
# (< 10^12 EUR), so a meter register tops out at 10^12 Wh (10^9 kWh) and a price at 999 EUR/kWh
# (10^9 kWh x 999 < 10^12); meters are bigint and prices numeric(8, 4), both wider than that.
# Connector ids and counts (integer columns) are capped at 99 below.
STORABLE_METER_WH = 10**12
STORABLE_PRICE_EUR_PER_KWH = 999.0

Timestamp = Annotated[datetime, BeforeValidator(_rfc3339), AfterValidator(_to_utc)]
Float = Annotated[float, Strict(), Field(allow_inf_nan=False)]
NonNegFloat = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
MeterWh = Annotated[StrictInt, Field(ge=0, le=STORABLE_METER_WH)]
ConnectorId = Annotated[StrictInt, Field(ge=0, le=99)]
SessionConnectorId = Annotated[StrictInt, Field(ge=1, le=99)]
Percent = Annotated[float, Strict(), Field(ge=0, le=100, allow_inf_nan=False)]
Text = Annotated[str, Strict(), Field(min_length=1, max_length=200)]
Price = Annotated[
    float,
    Strict(),
    Field(ge=0, le=STORABLE_PRICE_EUR_PER_KWH, allow_inf_nan=False),
    AfterValidator(lambda p: round(p, 4)),
]


# The canonical form `str(UUID(value))` returns; a value already in it is returned as is, which
# skips parsing and re-formatting for nearly every id a producer sends.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _uuid_str(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError("wrong_type", "must be a UUID string")
    if _CANONICAL_UUID.fullmatch(value):
        return value
    return str(UUID(value))


UuidStr = Annotated[str, BeforeValidator(_uuid_str)]


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: UuidStr
    schema_version: Literal[1]
    timestamp: Timestamp
    station_id: Annotated[str, Strict(), Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]

    def to_wire(self) -> dict[str, Any]:
        """The normalised event as JSON-compatible values: what tasks carry and indexes store."""
        return self.model_dump(mode="json", exclude_none=True)


class StationBoot(_Envelope):
    event_type: Literal[EventType.STATION_BOOT]
    name: Text
    operator: Text
    city: Text
    latitude: Annotated[float, Strict(), Field(ge=-90, le=90, allow_inf_nan=False)]
    longitude: Annotated[float, Strict(), Field(ge=-180, le=180, allow_inf_nan=False)]
    max_power_kw: Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]
    connector_count: Annotated[StrictInt, Field(ge=1, le=99)]
    price_eur_per_kwh: Price
    vendor: Text | None = None
    model: Text | None = None
    firmware_version: Text | None = None


class StationStatus(_Envelope):
    event_type: Literal[EventType.STATION_STATUS]
    connector_id: ConnectorId
    status: ChargePointStatus
    error_code: ChargePointErrorCode
    heartbeat: StrictBool | None = None
    info: Annotated[str, Strict(), Field(max_length=500)] | None = None


class SessionStarted(_Envelope):
    event_type: Literal[EventType.SESSION_STARTED]
    session_id: UuidStr
    connector_id: SessionConnectorId
    meter_start_wh: MeterWh
    price_eur_per_kwh: Price
    id_tag_hash: Annotated[str, Strict(), Field(max_length=64)] | None = None
    vehicle_battery_kwh: Annotated[float, Strict(), Field(gt=0, le=1000, allow_inf_nan=False)] | None = None
    soc_percent: Percent | None = None


class SessionProgress(_Envelope):
    event_type: Literal[EventType.SESSION_PROGRESS]
    session_id: UuidStr
    connector_id: SessionConnectorId
    meter_wh: MeterWh
    power_kw: NonNegFloat
    soc_percent: Percent | None = None
    voltage_v: Annotated[float, Strict(), Field(ge=0, le=2000, allow_inf_nan=False)] | None = None
    current_a: Annotated[float, Strict(), Field(ge=0, le=2000, allow_inf_nan=False)] | None = None


class SessionCompleted(_Envelope):
    event_type: Literal[EventType.SESSION_COMPLETED]
    session_id: UuidStr
    connector_id: SessionConnectorId
    meter_stop_wh: MeterWh
    stop_reason: StopReason


Event = Union[StationBoot, StationStatus, SessionStarted, SessionProgress, SessionCompleted]
_EVENT = TypeAdapter(Annotated[Event, Field(discriminator="event_type")])


@dataclass(frozen=True, slots=True)
class Limits:
    """Plausibility limits; `Settings` carries the configured values (see `Limits.from_settings`)."""

    max_payload_bytes: int = 64 * 1024
    max_event_age: timedelta = timedelta(days=30)
    max_event_future: timedelta = timedelta(minutes=15)
    max_power_kw: float = 1000.0
    max_meter_wh: int = 10**12
    max_price_eur_per_kwh: float = 10.0
    id_tag_hash_key: bytes = b""

    @classmethod
    def from_settings(cls, settings: Any) -> "Limits":
        return cls(
            max_payload_bytes=settings.max_payload_bytes,
            max_event_age=timedelta(seconds=settings.max_event_age_s),
            max_event_future=timedelta(seconds=settings.max_event_future_s),
            max_power_kw=settings.max_power_kw,
            max_meter_wh=settings.max_meter_wh,
            max_price_eur_per_kwh=settings.max_price_eur_per_kwh,
            id_tag_hash_key=settings.id_tag_hash_key.encode(),
        )


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: Reason
    detail: str


def hash_id_tag(id_tag: str, key: bytes = b"") -> str:
    """The only form in which an id_tag is kept: HMAC-SHA256 with the configured key (or SHA-256)."""
    if key:
        return hmac.new(key, id_tag.encode(), hashlib.sha256).hexdigest()
    return hashlib.sha256(id_tag.encode()).hexdigest()


class _NonFinite(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NonFinite(name)


# One decoder for every message: `json.loads(text, parse_constant=...)` builds a new one per call.
_JSON = json.JSONDecoder(parse_constant=_reject_constant)


# pydantic error type -> our reason. Anything not listed is an invalid value.
_PYDANTIC_REASONS: dict[str, Reason] = {
    "missing": Reason.MISSING_FIELD,
    "union_tag_not_found": Reason.MISSING_FIELD,
    "union_tag_invalid": Reason.UNKNOWN_EVENT_TYPE,
    "finite_number": Reason.NON_FINITE,
    "greater_than": Reason.OUT_OF_RANGE,
    "greater_than_equal": Reason.OUT_OF_RANGE,
    "less_than": Reason.OUT_OF_RANGE,
    "less_than_equal": Reason.OUT_OF_RANGE,
    "string_too_short": Reason.OUT_OF_RANGE,
    "string_too_long": Reason.OUT_OF_RANGE,
    "int_type": Reason.WRONG_TYPE,
    "float_type": Reason.WRONG_TYPE,
    "string_type": Reason.WRONG_TYPE,
    "bool_type": Reason.WRONG_TYPE,
    "model_type": Reason.WRONG_TYPE,
    "int_from_float": Reason.WRONG_TYPE,
    "string_unicode": Reason.INVALID_TEXT,
}


def _reason_for(error: dict[str, Any]) -> Reason:
    kind, given = error["type"], error.get("input")
    # an enumeration says "invalid value" for anything; a non-string is the wrong kind of value
    if kind == "enum" and not isinstance(given, str):
        return Reason.WRONG_TYPE
    # an integer too large to be a float (10**400 for a latitude) is a number out of range
    if kind == "float_type" and type(given) is int:
        return Reason.OUT_OF_RANGE
    if kind in _PYDANTIC_REASONS:
        return _PYDANTIC_REASONS[kind]
    if kind.endswith("_type"):
        return Reason.WRONG_TYPE
    return Reason.INVALID_VALUE


def decode(raw: bytes, *, received_at: datetime, limits: Limits = Limits()) -> Event:
    """Bytes of one message -> a normalised `Event`, or raise `InvalidEvent` with a reason.

    `received_at` anchors the timestamp window; pass the Kafka record's timestamp so that a
    replayed message gets the same verdict it got the first time.
    """
    if len(raw) > limits.max_payload_bytes:
        raise InvalidEvent(Reason.TOO_LARGE, f"{len(raw)} bytes > limit {limits.max_payload_bytes}")
    if not raw:
        raise InvalidEvent(Reason.EMPTY_VALUE, "the value is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(Reason.INVALID_TEXT, f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        if text.startswith("\ufeff"):  # as json.loads does
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        obj = _JSON.decode(text)
    except _NonFinite as exc:
        raise InvalidEvent(Reason.NON_FINITE, f"JSON constant {exc} is not a finite number") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        if not text.strip():
            raise InvalidEvent(Reason.EMPTY_VALUE, "the value is only whitespace") from None
        raise InvalidEvent(Reason.INVALID_JSON, str(exc)[:200]) from None
    except ValueError as exc:  # CPython's int_max_str_digits: a JSON integer of over 4300 digits
        raise InvalidEvent(Reason.OUT_OF_RANGE, f"a number too long to read: {str(exc)[:120]}") from None
    if not isinstance(obj, dict):
        raise InvalidEvent(Reason.NOT_AN_OBJECT, f"top level is a JSON {type(obj).__name__}, not an object")
    # Two kinds of text PostgreSQL (and any UTF-8 consumer) cannot take, both reachable only
    # through a JSON escape: NUL ("\u0000") and a lone UTF-16 surrogate ("\ud800"; a valid pair
    # decodes to one character). The walk over the parsed values runs only when such an escape
    # appears at all, so a clean event pays one substring search, as it did for NUL alone.
    if "\\u" in text and ("\\u0000" in text or "\\ud" in text or "\\uD" in text):
        _check_text(obj)

    if "schema_version" in obj:
        version = obj["schema_version"]
        if type(version) is not int:
            raise InvalidEvent(Reason.WRONG_TYPE, "schema_version must be an integer")
        if version != SCHEMA_VERSION:
            raise InvalidEvent(Reason.UNSUPPORTED_SCHEMA_VERSION, f"schema_version {version} (supported: 1)")
    event_type = obj.get("event_type")
    if event_type is not None and not isinstance(event_type, str):
        raise InvalidEvent(Reason.WRONG_TYPE, "event_type must be a string")

    id_tag = obj.pop("id_tag", None)
    obj.pop("id_tag_hash", None)  # only we compute hashes
    if id_tag is not None:
        if not isinstance(id_tag, str) or not id_tag or len(id_tag) > 64:
            raise InvalidEvent(Reason.WRONG_TYPE, "id_tag must be a string of 1..64 characters")
        obj["id_tag_hash"] = hash_id_tag(id_tag, limits.id_tag_hash_key)

    try:
        event = _EVENT.validate_python(obj)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        reason, msg = _reason_for(first), first["msg"]
        if reason is Reason.OUT_OF_RANGE and first["type"] == "float_type":
            msg = "an integer too large for a floating-point number"
        loc = ".".join(str(part) for part in first["loc"][1:] or first["loc"])
        detail = f"{loc}: {msg}" if loc else msg
        if len(errors) > 1:
            detail += f" (+{len(errors) - 1} more)"
        raise InvalidEvent(reason, detail) from None

    _check_plausible(event, received_at, limits)
    return event


def _check_text(obj: dict[str, Any]) -> None:
    """Raise `InvalidEvent` if any key or string holds NUL or a lone surrogate.

    Iterative, not recursive: the JSON parser accepts nesting almost as deep as the interpreter's
    recursion limit, and a recursive walk started further down the stack would overflow it.
    """
    stack: list[Any] = [obj]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            if "\x00" in value:
                raise InvalidEvent(Reason.INVALID_VALUE, "a string contains the NUL character (\\u0000)")
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError as exc:
                    raise InvalidEvent(
                        Reason.INVALID_TEXT,
                        f"a string holds a lone UTF-16 surrogate (\\u{ord(value[exc.start]):04x}), which is not text",
                    ) from None


def _check_plausible(event: Event, received_at: datetime, limits: Limits) -> None:
    if event.timestamp < received_at - limits.max_event_age:
        raise InvalidEvent(
            Reason.TIMESTAMP_OUT_OF_WINDOW,
            f"timestamp {event.timestamp.isoformat()} is more than {limits.max_event_age} before receipt",
        )
    if event.timestamp > received_at + limits.max_event_future:
        raise InvalidEvent(
            Reason.TIMESTAMP_OUT_OF_WINDOW,
            f"timestamp {event.timestamp.isoformat()} is more than {limits.max_event_future} after receipt",
        )
    checks: list[tuple[str, float | None, float]] = []
    if isinstance(event, StationBoot):
        checks = [
            ("max_power_kw", event.max_power_kw, limits.max_power_kw),
            ("price_eur_per_kwh", event.price_eur_per_kwh, limits.max_price_eur_per_kwh),
        ]
    elif isinstance(event, SessionStarted):
        checks = [
            ("meter_start_wh", event.meter_start_wh, limits.max_meter_wh),
            ("price_eur_per_kwh", event.price_eur_per_kwh, limits.max_price_eur_per_kwh),
        ]
    elif isinstance(event, SessionProgress):
        checks = [("meter_wh", event.meter_wh, limits.max_meter_wh), ("power_kw", event.power_kw, limits.max_power_kw)]
    elif isinstance(event, SessionCompleted):
        checks = [("meter_stop_wh", event.meter_stop_wh, limits.max_meter_wh)]
    for name, value, limit in checks:
        if value is not None and value > limit:
            raise InvalidEvent(Reason.OUT_OF_RANGE, f"{name}={value} exceeds the plausible maximum {limit}")


def validate(raw: bytes, *, received_at: datetime, limits: Limits = Limits()) -> Event | Rejection:
    """Like `decode`, but returns the rejection instead of raising it."""
    try:
        return decode(raw, received_at=received_at, limits=limits)
    except InvalidEvent as exc:
        return Rejection(exc.reason, exc.detail)

