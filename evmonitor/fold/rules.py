"""The merge rule of every column the persist path writes, and the columns each event writes.

Data, read by two generators: `evmonitor.fold.generate` (the Python fold, and the merge of two
folds) and `evmonitor.storage.postgres` (the SQL upsert). Each `Merge` has one rendering in
each language there, so a rule changed here changes both. A column added to one of these tables
needs a rule here: tests/integration/test_sql_fold.py compares `TABLES` with the database.

`WRITES` maps each kind of event to the rows it writes. Values are Python expressions over the
event (`event`, the wire dict) and its parsed timestamp (`ts`; `STAMP` and `MINUTE`: it as text),
nullable where the contract makes the field optional; the generator checks that every written column has a rule and that a
last-writer-wins group is written whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel

from evmonitor.contract import EventType, SessionCompleted, SessionProgress, SessionStarted, StationBoot, StationStatus

__all__ = [
    "CONNECTORS",
    "Merge",
    "Rule",
    "SERVER_SIDE",
    "MINUTE",
    "PRESENCE",
    "SESSIONS",
    "STAMP",
    "STATIONS",
    "STATUS_LOG",
    "SessionStatus",
    "TABLES",
    "TS",
    "Table",
    "Value",
    "WRITES",
    "Write",
    "check_rules",
    "first",
    "latest",
    "table",
]


class SessionStatus(StrEnum):
    """`charging_sessions.status`: derived from the fold, except `stale`, which beat sets."""

    ACTIVE = "active"
    COMPLETED = "completed"
    STALE = "stale"


# --- how each column merges ------------------------------------------------------------------


class Merge(StrEnum):
    """How a column merges the stored version of a row with an incoming one. NULL never wins.

    Every merge is commutative, associative and idempotent. The last four are derived, not
    merged: no event writes them.
    """

    KEY = "key"  # identifies the row: both sides agree
    SAME = "same"  # a fact of the one event the row is keyed by: both sides agree, the stored one stays
    LEAST = "least"  # the smaller value (earliest time, first meter)
    LEAST_TEXT = "least_text"  # LEAST of text by code point (SQL: COLLATE "C", so no locale reorders it)
    GREATEST = "greatest"  # the larger value (latest time, highest meter)
    LATEST = "latest"  # last writer wins: the side whose `by` columns sort last gives the whole group
    FIRST = "first"  # LATEST's mirror: the side whose `by` columns sort first gives the whole group
    # completed once `by[0]` (the end) is set, which sticks; else active, and a session beat marked
    # stale is active again once `by[1]` (its last event) moves on
    SESSION_STATUS = "session_status"
    WRITTEN_AT = "written_at"  # the server's clock at the write (the core has no clock)
    GENERATED = "generated"  # computed by the database from `by` (GENERATED ALWAYS)
    JOINED = "joined"  # copied by beat from another table (see the column's comment); no event writes it


@dataclass(frozen=True)
class Rule:
    merge: Merge
    by: tuple[str, ...] = ()  # the columns the rule reads: LATEST's ordering, SESSION_STATUS's inputs
    default: str | None = None  # the column whose value this one takes while no event has set it


@dataclass(frozen=True, eq=False)  # a table is itself, whatever its rules
class Table:
    name: str  # the SQL table
    attr: str  # its field of `Columns`
    key: tuple[str, ...]
    columns: Mapping[str, Rule]  # every column the persist path writes, in the table's order

    def groups(self) -> dict[tuple[str, ...], tuple[str, ...]]:
        """The LATEST and FIRST groups: ordering columns -> every column the winner gives (ordering
        included). A group's direction is the rule of its columns."""
        out: dict[tuple[str, ...], tuple[str, ...]] = {}
        for column, rule in self.columns.items():
            if rule.merge in GROUPS:
                out[rule.by] = (*out.get(rule.by, ()), column)
        return out

    def written(self) -> tuple[str, ...]:
        """The columns a fold of events gives a value (all but those of the server's making)."""
        return tuple(c for c, r in self.columns.items() if r.merge not in SERVER_SIDE)


SERVER_SIDE = (Merge.WRITTEN_AT, Merge.GENERATED, Merge.JOINED)
GROUPS = (Merge.LATEST, Merge.FIRST)
KEY, SAME, WRITTEN_AT = Rule(Merge.KEY), Rule(Merge.SAME), Rule(Merge.WRITTEN_AT)
LEAST, LEAST_TEXT, GREATEST = Rule(Merge.LEAST), Rule(Merge.LEAST_TEXT), Rule(Merge.GREATEST)


def latest(by: tuple[str, ...], *columns: str, defaults: Mapping[str, str] | None = None) -> dict[str, Rule]:
    """A last-writer-wins group: `columns`, and `by`, the columns whose order picks the writer."""
    return {c: Rule(Merge.LATEST, by, (defaults or {}).get(c)) for c in (*columns, *by)}


def first(by: tuple[str, ...], *columns: str) -> dict[str, Rule]:
    """A first-writer-wins group: `columns`, and `by`, the columns whose least order picks the writer."""
    return {c: Rule(Merge.FIRST, by) for c in (*columns, *by)}


BOOT = ("boot_at", "boot_event_id")
LIVE = ("status_at", "status_event_id")
PROGRESS = ("progress_at", "progress_meter_wh", "progress_event_id")
PROFILE = ("operator", "city", "latitude", "longitude", "max_power_kw", "connector_count", "price_eur_per_kwh",
           "vendor", "model", "firmware_version")  # fmt: skip


def table(name: str, attr: str, key: tuple[str, ...], *parts: Mapping[str, Rule]) -> Table:
    """A `Table` whose rules are `parts` together; a column with two rules is refused."""
    columns: dict[str, Rule] = {}
    for part in parts:
        twice = set(columns) & set(part)
        if twice:
            raise ValueError(f"{name}: {sorted(twice)} have two rules")
        columns.update(part)
    return Table(name, attr, key, columns)


STATIONS = table(
    "charging_stations", "stations", ("id",),
    {"id": KEY},
    # the profile of the latest station_boot; a station is named by its id until one arrives
    latest(BOOT, "name", *PROFILE, defaults={"name": "id"}),
    # the whole station's status (connector 0)
    latest(LIVE, "status", "error_code"),
    {"first_seen_at": LEAST, "last_seen_at": GREATEST, "last_heartbeat_at": GREATEST, "updated_at": WRITTEN_AT},
)  # fmt: skip

# a connector's row is its latest status, whole
CONNECTORS = table(
    "connector_status", "connectors", ("station_id", "connector_id"),
    {"station_id": KEY, "connector_id": KEY},
    latest(LIVE, "status", "error_code", "info"),
)  # fmt: skip

# every status change (heartbeats excluded), for fault and availability history
STATUS_LOG = table(
    "status_events", "status_log", ("event_id",),
    {"event_id": KEY},
    dict.fromkeys(("station_id", "connector_id", "status", "error_code", "info", "ts"), SAME),
)  # fmt: skip

# Facts a session's events must agree on (DESIGN.md invariant 5) keep both extremes, each with the
# event that carried it, so a disagreement is a function of the merged row whatever the order:
# the place (station, connector) of every event, the start meter of every session_started, and the
# lowest meter of any reading or stop. `held_reason` (a generated column, Python twin
# `evmonitor.fold.money.held_reason`) names the first disagreement; a held session has no energy
# and no cost. `power_limit_kw` is the station's max_power_kw, joined by beat (another table).
PLACE_MIN = ("station_id", "connector_id", "place_min_event_id")
PLACE_MAX = ("station_id_max", "connector_id_max", "place_max_event_id")
START_MIN = ("meter_start_wh", "meter_start_event_id")
START_MAX = ("meter_start_max_wh", "meter_start_max_event_id")
READING_MIN = ("meter_min_wh", "meter_min_event_id")
HELD_BY = ("station_id", "station_id_max", "connector_id", "connector_id_max", "meter_start_wh", "meter_start_max_wh",
           "meter_min_wh", "meter_max_wh", "start_time", "last_event_at", "power_limit_kw")  # fmt: skip

SESSIONS = table(
    "charging_sessions", "sessions", ("id",),
    {
        "id": KEY,
        "start_time": LEAST,  # the earliest event of the session
        "end_time": LEAST,  # set by session_completed, then sticks
        "status": Rule(Merge.SESSION_STATUS, ("end_time", "last_event_at")),
        "meter_max_wh": GREATEST,
        "meter_stop_wh": GREATEST,
        "price_eur_per_kwh": GREATEST,
        "stop_reason": LEAST_TEXT,
        "id_tag_hash": LEAST_TEXT,
        "vehicle_battery_kwh": GREATEST,
        "soc_start_percent": LEAST,
        "last_event_at": GREATEST,
        "peak_power_kw": GREATEST,  # the highest power_kw of its progress readings (NEVI session data)
        "power_limit_kw": Rule(Merge.JOINED),  # charging_stations.max_power_kw, copied by beat/conflicts.py
        # session quality, judged by beat/sessions.py from the row and the status history (sql/006)
        "failed": Rule(Merge.JOINED),
        "failure_reason": Rule(Merge.JOINED),
        "failure_code": Rule(Merge.JOINED),
        "held_reason": Rule(Merge.GENERATED, HELD_BY),
        # DESIGN.md's money, in SQL, NULL while held; the Python twins are `evmonitor.fold.money`'s
        "energy_delivered_kwh": Rule(Merge.GENERATED, ("meter_start_wh", "meter_max_wh", *HELD_BY)),
        "cost_eur": Rule(Merge.GENERATED, ("meter_start_wh", "meter_max_wh", "price_eur_per_kwh", *HELD_BY)),
        "updated_at": WRITTEN_AT,
    },
    first(PLACE_MIN), latest(PLACE_MAX), first(START_MIN), latest(START_MAX), first(READING_MIN),
    # the latest meter reading; a tie in time goes to the higher meter
    latest(PROGRESS, "power_kw", "soc_percent"),
)  # fmt: skip

# when each station was heard from, per minute of event time (every event, heartbeats included): the
# history beat/faults.py reads offline episodes from, past silences included (sql/009_presence.sql)
PRESENCE = table(
    "station_presence", "presence", ("station_id", "minute"),
    {"station_id": KEY, "minute": KEY, "first_ts": LEAST, "last_ts": GREATEST},
)  # fmt: skip

TABLES: tuple[Table, ...] = (STATIONS, CONNECTORS, STATUS_LOG, SESSIONS, PRESENCE)


# --- what each event writes -------------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    """A column's value in an event: a Python expression over `event` (the wire dict) and `ts`
    (its timestamp, parsed), and whether it may be None (an optional field of the contract)."""

    expr: str
    nullable: bool = False


TS = Value("ts")
# `ts` as fixed-width UTC text (sorts as time does; no isoformat when the rows go to JSON), and that
# truncated to the minute (SQL: date_trunc('minute', ts)); each computed once per event
STAMP = Value("stamp")
MINUTE = Value("minute")


def _fields(model: type[BaseModel]) -> Callable[[str], Value]:
    """The fields of one kind of event as `Value`s, nullable where the contract makes them optional."""

    def value(name: str) -> Value:
        if model.model_fields[name].is_required():
            return Value(f"event[{name!r}]")
        return Value(f"event.get({name!r})", nullable=True)

    return value


@dataclass(frozen=True)
class Write:
    """The columns an event writes into one row of `table`, if `when` (an expression) holds."""

    table: Table
    values: Mapping[str, Value]
    when: str | None = None


def _seen(ev: Callable[[str], Value], **values: Value) -> tuple[Write, Write]:
    """Every event: the station it comes from has been seen at `ts` (and in `ts`'s minute)."""
    return (Write(PRESENCE, {"station_id": ev("station_id"), "minute": MINUTE, "first_ts": STAMP, "last_ts": STAMP}),
            Write(STATIONS, {"id": ev("station_id"), "first_seen_at": TS, "last_seen_at": TS, **values}))


def _extremes(
    ev: Callable[[str], Value], low: tuple[str, ...], high: tuple[str, ...], *fields: str
) -> dict[str, Value]:
    """Both extremes of a fact: the event's `fields` (then its id) into the FIRST group `low` and
    the LATEST group `high`."""
    values = [*(ev(f) for f in fields), ev("event_id")]
    return {**dict(zip(low, values)), **dict(zip(high, values))}


def _session(model: type[BaseModel], **values: str | Value) -> tuple[Write, ...]:
    """A session event: its station is seen, its session row gets `values` (event fields by name)."""
    ev = _fields(model)
    common = {"id": ev("session_id"), "start_time": TS, "last_event_at": TS,
              **_extremes(ev, PLACE_MIN, PLACE_MAX, "station_id", "connector_id")}  # fmt: skip
    given = {c: ev(v) if isinstance(v, str) else v for c, v in values.items()}
    return *_seen(ev), Write(SESSIONS, {**common, **given})


_status, _boot = _fields(StationStatus), _fields(StationBoot)
_HEARTBEAT = "event.get('heartbeat')"

# In the generated fold, the branch of the most frequent kind of event comes first.
WRITES: dict[EventType, tuple[Write, ...]] = {
    EventType.SESSION_PROGRESS: _session(
        SessionProgress, meter_max_wh="meter_wh", meter_min_wh="meter_wh", meter_min_event_id="event_id",
        progress_at=TS, progress_meter_wh="meter_wh",
        progress_event_id="event_id", power_kw="power_kw", soc_percent="soc_percent", peak_power_kw="power_kw",
    ),
    EventType.STATION_STATUS: (
        *_seen(_status),
        Write(STATIONS, {"id": _status("station_id"), "last_heartbeat_at": TS}, when=_HEARTBEAT),
        Write(STATIONS, {"id": _status("station_id"), "status": _status("status"), "error_code": _status("error_code"),
                         "status_at": TS, "status_event_id": _status("event_id")},
              when="event['connector_id'] == 0"),
        Write(CONNECTORS, {**{c: _status(c) for c in ("station_id", "connector_id", "status", "error_code", "info")},
                           "status_at": TS, "status_event_id": _status("event_id")},
              when="event['connector_id'] != 0"),
        Write(STATUS_LOG, {**{c: _status(c) for c in ("event_id", "station_id", "connector_id", "status",
                                                      "error_code", "info")}, "ts": TS},
              when=f"not {_HEARTBEAT}"),
    ),
    EventType.SESSION_STARTED: _session(
        SessionStarted, **_extremes(_fields(SessionStarted), START_MIN, START_MAX, "meter_start_wh"),
        meter_max_wh="meter_start_wh",
        price_eur_per_kwh="price_eur_per_kwh", id_tag_hash="id_tag_hash", vehicle_battery_kwh="vehicle_battery_kwh",
        soc_start_percent="soc_percent",
    ),
    EventType.SESSION_COMPLETED: _session(
        SessionCompleted, end_time=TS, meter_max_wh="meter_stop_wh", meter_stop_wh="meter_stop_wh",
        meter_min_wh="meter_stop_wh", meter_min_event_id="event_id",
        stop_reason="stop_reason",
    ),
    EventType.STATION_BOOT: (
        *_seen(_boot, **{c: _boot(c) for c in ("name", *PROFILE)}, boot_at=TS, boot_event_id=_boot("event_id")),
    ),
}  # fmt: skip



def check_rules(tables: Iterable[Table]) -> None:
    """Raise `ValueError` unless every rule reads columns of its table, and every LATEST or FIRST group is
    ordered by columns of the group."""
    for table in tables:
        for column, rule in table.columns.items():
            missing = {*rule.by, *([rule.default] if rule.default else [])} - set(table.columns)
            if missing:
                raise ValueError(f"{table.name}.{column}: its rule reads {sorted(missing)}, which have no rule")
            if rule.merge in GROUPS and any(table.columns[c] != Rule(rule.merge, rule.by) for c in rule.by):
                raise ValueError(f"{table.name}.{column}: the order {rule.by} of its group must be of the group")
        if any(table.columns.get(c) != KEY for c in table.key):
            raise ValueError(f"{table.name}: every key column has the rule KEY")


check_rules(TABLES)
