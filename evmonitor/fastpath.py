"""The fast path of validation: bytes of a plainly valid event -> its wire dict, in a few µs.

`FastPath(limits)(raw, received_ms)` returns `(wire, timestamp)` -- exactly the dict that
`validate(raw, received_at=..., limits=limits).to_wire()` gives and the event's UTC timestamp --
or None. It only ever *accepts*: whatever it is not sure about (any rejection, and any unusual
input a producer may still send validly: a non-canonical UUID, another timestamp form, a JSON
escape that may hide NUL or a surrogate, an unknown field, a nested value, a big message) gives
None, and the caller asks `evmonitor.contract.validate`, which alone decides rejections and their
reasons. So for every input: FastPath(x) is None, or it equals what the pydantic path gives.
tests/unit/test_fastpath.py feeds both the same bytes. On the bench machine it takes 4-5 CPU-µs
per simulator event where the models take 8-9 (bench stage `bridge_validate`).

Why the shortcuts are safe where orjson and the standard decoder differ:
* one `{` and no `[` in the bytes: every value is a scalar, so no nesting depth either decoder
  could refuse;
* fewer bytes than `sys.get_int_max_str_digits()`: no integer the standard decoder refuses as
  too long to read, also not in a duplicated key (both decoders keep the last value);
* an integer orjson reads as a float (beyond 64 bits) fails every integer field's type check, and
  a float field gets the same correctly rounded float either way.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from evmonitor.contract import (
    _CANONICAL_UUID,
    SCHEMA_VERSION,
    STORABLE_METER_WH,
    STORABLE_PRICE_EUR_PER_KWH,
    ChargePointErrorCode,
    ChargePointStatus,
    EventType,
    Limits,
    StopReason,
    hash_id_tag,
)

__all__ = ["FastPath"]

Accepted = tuple[dict[str, Any], datetime]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_UTC = timezone.utc
# Below 2**42 ms (year 2109) a record timestamp `ts` gives the same instant as the bridge's
# `datetime.fromtimestamp(ts / 1000)`: the float's error stays under half a microsecond.
_MAX_RECEIVED_MS = 2**42
_MAX_BYTES = sys.get_int_max_str_digits() or 64 * 1024
_FLOAT_MAX = sys.float_info.max
_ABOVE_ZERO = 5e-324  # the least float above 0: `_ABOVE_ZERO <= v` is the models' `gt=0`

_UUID = _CANONICAL_UUID.fullmatch
# RFC 3339 in the forms producers use: upper-case T and Z, 0 to 6 fractional digits, ASCII digits
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
).fullmatch

_STATUSES = frozenset(ChargePointStatus)
_ERROR_CODES = frozenset(ChargePointErrorCode)
_STOP_REASONS = frozenset(StopReason)

_ENVELOPE = ("event_id", "event_type", "schema_version", "timestamp", "station_id", "id_tag", "id_tag_hash")
_FIELDS = {
    EventType.STATION_BOOT: ("name", "operator", "city", "latitude", "longitude", "max_power_kw", "connector_count",
                             "price_eur_per_kwh", "vendor", "model", "firmware_version"),
    EventType.STATION_STATUS: ("connector_id", "status", "error_code", "heartbeat", "info"),
    EventType.SESSION_STARTED: ("session_id", "connector_id", "meter_start_wh", "price_eur_per_kwh",
                                "vehicle_battery_kwh", "soc_percent"),
    EventType.SESSION_PROGRESS: ("session_id", "connector_id", "meter_wh", "power_kw", "soc_percent", "voltage_v",
                                 "current_a"),
    EventType.SESSION_COMPLETED: ("session_id", "connector_id", "meter_stop_wh", "stop_reason"),
}  # fmt: skip
_KNOWN = {str(t): frozenset(_ENVELOPE + fields) for t, fields in _FIELDS.items()}


def _number(value: Any, low: float, high: float) -> float | None:
    """A strict float field (an int is taken and made a float, as pydantic does) within [low, high]."""
    kind = type(value)
    if kind is float:
        return value if low <= value <= high else None
    if kind is int and -(2**63) <= value < 2**64:
        value = float(value)
        return value if low <= value <= high else None
    return None


# optional float fields, in the model's order, with their ranges
_STARTED_OPTIONALS = (("vehicle_battery_kwh", _ABOVE_ZERO, 1000.0), ("soc_percent", 0.0, 100.0))
_PROGRESS_OPTIONALS = (("soc_percent", 0.0, 100.0), ("voltage_v", 0.0, 2000.0), ("current_a", 0.0, 2000.0))


def _optionals(obj: dict[str, Any], fields: tuple[tuple[str, float, float], ...], out: dict[str, Any]) -> bool:
    """Optional float fields: each absent or null (and left out), else as `_number`; a float in
    range is taken without calling it."""
    for name, low, high in fields:
        value = obj.get(name)
        if value is None:
            continue
        if not (type(value) is float and low <= value <= high):
            value = _number(value, low, high)
            if value is None:
                return False
        out[name] = value
    return True


def _text(value: Any, max_length: int = 200) -> bool:
    return type(value) is str and 0 < len(value) <= max_length


class FastPath:
    """Built once per consumer from its `Limits`; call it per record (see the module docstring)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.max_bytes = min(limits.max_payload_bytes, _MAX_BYTES - 1)
        self.max_meter_wh = min(STORABLE_METER_WH, limits.max_meter_wh)
        self.max_price = limits.max_price_eur_per_kwh
        self.max_power_kw = min(limits.max_power_kw, _FLOAT_MAX)
        self._received_ms: int | None = None
        self._window: tuple[datetime, datetime] = (_EPOCH, _EPOCH)
        self._build = {
            EventType.STATION_BOOT: self._station_boot,
            EventType.STATION_STATUS: self._station_status,
            EventType.SESSION_STARTED: self._session_started,
            EventType.SESSION_PROGRESS: self._session_progress,
            EventType.SESSION_COMPLETED: self._session_completed,
        }

    def __call__(self, raw: bytes, received_ms: Any) -> Accepted | None:
        """(wire dict, UTC timestamp) of a plainly valid event received at `received_ms`, or None.

        One function on purpose (it runs once per record): the timestamp's checks are inline.
        """
        try:
            if (
                len(raw) > self.max_bytes
                or raw[:1] != b"{"
                or raw.find(b"{", 1) != -1
                or b"[" in raw
                or (b"\\" in raw and (b"\\u0000" in raw or b"\\ud" in raw or b"\\uD" in raw))
                or type(received_ms) is not int
                or not 0 < received_ms < _MAX_RECEIVED_MS
            ):
                return None
            obj = orjson.loads(raw)  # a JSONDecodeError is a ValueError: None below
            if type(obj) is not dict:
                return None
            event_type = obj.get("event_type")
            if type(event_type) is not str or event_type not in _KNOWN or not obj.keys() <= _KNOWN[event_type]:
                return None
            event_id, version, station_id = obj.get("event_id"), obj.get("schema_version"), obj.get("station_id")
            if (
                type(event_id) is not str
                or not _UUID(event_id)
                or type(version) is not int
                or version != SCHEMA_VERSION
                or type(station_id) is not str
                or not 0 < len(station_id) <= 64
                or not station_id.isprintable()  # the model's pattern: no C0 control character, no DEL
            ):
                return None
            id_tag = obj.get("id_tag")
            if id_tag is not None and not (type(id_tag) is str and 0 < len(id_tag) <= 64):
                return None
            # the timestamp: the UTC instant and its wire text (pydantic's: microseconds only when
            # not zero, `Z`), if it lies in the window around `received_ms`
            value = obj.get("timestamp")
            if type(value) is not str or not _TIMESTAMP(value):
                return None
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is not _UTC:
                moment = moment.astimezone(_UTC)
            if received_ms != self._received_ms:
                received = _EPOCH + timedelta(milliseconds=received_ms)
                self._window = (received - self.limits.max_event_age, received + self.limits.max_event_future)
                self._received_ms = received_ms
            earliest, latest = self._window
            if not earliest <= moment <= latest:
                return None
            if value[19] == "." and value[-1] == "Z" and moment.microsecond:  # the usual form: only padding
                text = value[:-1].ljust(26, "0") + "Z"
            else:
                text = moment.isoformat()[:-6] + "Z"
            out = {"event_id": event_id, "schema_version": version, "timestamp": text, "station_id": station_id,
                   "event_type": event_type}  # fmt: skip
            return (out, moment) if self._build[event_type](obj, out) else None
        except Exception:  # noqa: BLE001 - never a verdict: the pydantic path decides (and logs)
            return None

    # --- one builder per event type: fills `out` in the model's field order, False if unsure ---

    def _station_boot(self, obj: dict[str, Any], out: dict[str, Any]) -> bool:
        name, operator, city = obj.get("name"), obj.get("operator"), obj.get("city")
        if not (_text(name) and _text(operator) and _text(city)):
            return False
        latitude = _number(obj.get("latitude"), -90.0, 90.0)
        longitude = _number(obj.get("longitude"), -180.0, 180.0)
        power = _number(obj.get("max_power_kw"), _ABOVE_ZERO, self.max_power_kw)
        count = obj.get("connector_count")
        price = self._price(obj.get("price_eur_per_kwh"))
        if (latitude is None or longitude is None or power is None or price is None
                or type(count) is not int or not 1 <= count <= 99):  # fmt: skip
            return False
        out.update(name=name, operator=operator, city=city, latitude=latitude, longitude=longitude,
                   max_power_kw=power, connector_count=count, price_eur_per_kwh=price)  # fmt: skip
        for optional in ("vendor", "model", "firmware_version"):
            value = obj.get(optional)
            if value is not None:
                if not _text(value):
                    return False
                out[optional] = value
        return True

    def _station_status(self, obj: dict[str, Any], out: dict[str, Any]) -> bool:
        connector, status, error = obj.get("connector_id"), obj.get("status"), obj.get("error_code")
        heartbeat, info = obj.get("heartbeat"), obj.get("info")
        if (type(connector) is not int or not 0 <= connector <= 99 or type(status) is not str
                or status not in _STATUSES or type(error) is not str or error not in _ERROR_CODES
                or not (heartbeat is None or type(heartbeat) is bool)
                or not (info is None or (type(info) is str and len(info) <= 500))):  # fmt: skip
            return False
        out["connector_id"], out["status"], out["error_code"] = connector, status, error
        if heartbeat is not None:
            out["heartbeat"] = heartbeat
        if info is not None:
            out["info"] = info
        return True

    def _session(self, obj: dict[str, Any], out: dict[str, Any], meter: str) -> bool:
        """The fields every session event starts with: session_id, connector_id and its meter."""
        session_id, connector, meter_wh = obj.get("session_id"), obj.get("connector_id"), obj.get(meter)
        if (type(session_id) is not str or not _UUID(session_id) or type(connector) is not int
                or not 1 <= connector <= 99 or type(meter_wh) is not int or not 0 <= meter_wh <= self.max_meter_wh):  # fmt: skip
            return False
        out["session_id"], out["connector_id"], out[meter] = session_id, connector, meter_wh
        return True

    def _session_started(self, obj: dict[str, Any], out: dict[str, Any]) -> bool:
        if not self._session(obj, out, "meter_start_wh"):
            return False
        price = self._price(obj.get("price_eur_per_kwh"))
        if price is None:
            return False
        out["price_eur_per_kwh"] = price
        id_tag = obj.get("id_tag")
        if id_tag is not None:
            out["id_tag_hash"] = hash_id_tag(id_tag, self.limits.id_tag_hash_key)
        return _optionals(obj, _STARTED_OPTIONALS, out)

    def _session_progress(self, obj: dict[str, Any], out: dict[str, Any]) -> bool:
        if not self._session(obj, out, "meter_wh"):
            return False
        power = obj.get("power_kw")
        if not (type(power) is float and 0.0 <= power <= self.max_power_kw):  # else the int forms, or None
            power = _number(power, 0.0, self.max_power_kw)
            if power is None:
                return False
        out["power_kw"] = power
        return _optionals(obj, _PROGRESS_OPTIONALS, out)

    def _session_completed(self, obj: dict[str, Any], out: dict[str, Any]) -> bool:
        reason = obj.get("stop_reason")
        if not self._session(obj, out, "meter_stop_wh") or type(reason) is not str or reason not in _STOP_REASONS:
            return False
        out["stop_reason"] = reason
        return True

    def _price(self, value: Any) -> float | None:
        """Rounded to 4 decimals after the model's range, and the plausibility limit on the result."""
        price = _number(value, 0.0, STORABLE_PRICE_EUR_PER_KWH)
        if price is None:
            return None
        price = round(price, 4)
        return price if price <= self.max_price else None
