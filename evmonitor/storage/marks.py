"""Beat's marks, written by the persist path with its rows: one set-based statement per table.

Beat's incremental jobs read "marks" (which station-hours, which stations changed since when:
`rollup_marks`, `fault_marks`, `ledger_marks`, `presence_marks`; sql/002, 006, 009) and
recompute what they name. Triggers used to write them; now the writer does, in the same
transaction as the rows, with no per-row work: each table's upsert runs inside one statement
that also inserts its marks (`WITH up AS (INSERT ... ON CONFLICT ... RETURNING ...) INSERT INTO
..._marks SELECT ...`). The rules are the triggers' rules:

* `status_events` (insert only, ON CONFLICT DO NOTHING): RETURNING gives exactly the new rows;
  per station, the earliest of them marks `fault_marks` and `ledger_marks`.
* `charging_sessions`: a new session marks the hours it occupies (`evm_session_hours`); a session
  whose place, start, end, last event, energy, cost or held reason changed marks the hours it
  occupied before and after (a replay, which changes nothing a rollup sees, marks nothing). An
  ended session whose place, connector, times, meters or held reason changed marks the ledger
  from its earliest start.
* `charging_stations`: a new station marks its first hour; a changed profile (connectors,
  operator, city, first seen) marks every 12 h from first to last seen and its `station_hourly`
  hours.
* `station_presence`: a new minute, a minute heard earlier than known, or later than known in a
  minute that is not the station's latest, marks the station from the earliest such minute. The
  upsert skips updates that change nothing (its WHERE), so a replay writes no tuple.

The old rows. PostgreSQL 15 has no OLD in RETURNING, so the statement reads the rows it is about
to change in a CTE (`old`), which sees the statement's snapshot. Under READ COMMITTED, with two
persist workers whose batches share sessions or stations, that snapshot could miss a version
another worker commits just after it while the upsert then updates that newer version (ON
CONFLICT always acts on the latest): the marks would compare against a stale row, and a beat run
between the two commits could already have consumed the other worker's marks, leaving an hour
wrong. So each transaction first takes, in one statement (`KEY_LOCKS`), a transaction-scoped advisory lock per distinct station and per distinct
session of its batch, in sorted order (so two writers cannot deadlock on them):
`pg_advisory_xact_lock(class, hashtext(key))`, the two-int form, whose lock space
(pg_locks.objsubid = 2) is apart from the bigint keys of the schema lock and of beat's job and
leader locks. The statements that follow take new snapshots (READ COMMITTED), which see
every committed version of those rows, and nobody else writes them until we commit: the old rows
are exact. Presence rows are keyed by station, and every event writes its station's row, so the
station locks cover them; a later minute that exists is looked up in the snapshot and in the
batch's own rows (a CTE does not see its sibling's inserts, as an AFTER trigger did).

Beat writes `charging_sessions` without these locks, and never waits on them (no new wait cycle):
the conflicts job copies `power_limit_kw`, which moves the generated held reason, energy and cost,
and marks that change itself (beat/conflicts.py, under row locks, so its old value is exact); the
stale job's `status` and the sessions job's `failed` verdict are nothing a mark is about. A persist
statement whose snapshot missed such a commit compares with a row that differs from the latest
only in the limit, while its result is computed from the latest: a change the events make to what
a rollup sees shows against either (the hours, and the energy, which the limit only nulls); a
held reason that differs only by the limit is the job's change, already marked by the job.

Rows come in as one JSON array per table, parsed once per statement (`INCOMING`, which the upsert
reads instead of the JSON itself); `old` finds each row's stored version by one index probe.

Cost: a batch takes one lock per distinct station and session (at most its events); the server's
shared lock table holds max_locks_per_transaction x max_connections (6,400 by default; see
docs/operations.md).
"""

from __future__ import annotations

from evmonitor.fold import PRESENCE, SESSIONS, STATIONS, STATUS_LOG, Table

__all__ = ["INCOMING", "KEY_LOCKS", "STATION_LOCKS", "SESSION_LOCKS", "is_marked", "marked"]

# the first key of the two-int advisory locks: "ev" + a class number
STATION_LOCKS = 0x65760001
SESSION_LOCKS = 0x65760002

# one lock per distinct station and session of the batch, in sorted order; the keys come as arrays
# (the writer knows them from its fold: no JSON to parse again)
KEY_LOCKS = f"""
SELECT count(pg_advisory_xact_lock(c, h)) FROM (
    SELECT DISTINCT c, h FROM (
        SELECT {STATION_LOCKS} AS c, hashtext(k) AS h FROM unnest(CAST(%(station_ids)s AS text[])) AS k
        UNION ALL
        SELECT {SESSION_LOCKS}, hashtext(CAST(k AS uuid)::text) FROM unnest(CAST(%(session_ids)s AS text[])) AS k
    ) keys ORDER BY c, h
) sorted
"""

# the batch's rows of the table, parsed once: the upsert reads them (its source) and so does `old`
INCOMING = "incoming"
_INCOMING = "incoming AS (SELECT * FROM json_populate_recordset(NULL::{table}, CAST(%(rows)s AS json)))"

_STATUS_LOG = """
WITH {incoming}, up AS ({upsert} RETURNING status_events.station_id, status_events.ts),
earliest AS (SELECT station_id, min(ts) AS since FROM up GROUP BY station_id),
faults AS (INSERT INTO fault_marks (station_id, since) SELECT station_id, since FROM earliest)
INSERT INTO ledger_marks (station_id, since) SELECT station_id, since FROM earliest
"""

_SESSION_COLUMNS = ("id", "station_id", "connector_id", "start_time", "end_time", "last_event_at", "meter_start_wh",
                    "meter_max_wh", "energy_delivered_kwh", "cost_eur", "held_reason")  # fmt: skip
_ROLLUP_SEES = ("station_id", "start_time", "end_time", "last_event_at", "energy_delivered_kwh", "cost_eur", "held_reason")
_LEDGER_SEES = ("station_id", "connector_id", "start_time", "end_time", "meter_start_wh", "meter_max_wh", "held_reason")


def _row(alias: str, columns: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"{alias}.{c}" for c in columns) + ")"


def _old(table: str, key: tuple[str, ...], columns: tuple[str, ...]) -> str:
    """`old`: the stored version of each incoming row that has one, found by its key. One index probe
    per row (LIMIT 1 keeps the lookup a nested loop), whatever the planner thinks of the table's size."""
    match = " AND ".join(f"o.{c} = k.{c}" for c in key)
    return (f"old AS MATERIALIZED (SELECT o.* FROM incoming k CROSS JOIN LATERAL "
            f"(SELECT {', '.join(columns)} FROM {table} o WHERE {match} LIMIT 1) o)")


_SESSIONS = f"""
WITH {{incoming}}, {_old("charging_sessions", ("id",), _SESSION_COLUMNS)},
up AS ({{upsert}} RETURNING {", ".join(f"charging_sessions.{c}" for c in _SESSION_COLUMNS)}),
changed AS (
    SELECT u.station_id, u.start_time, coalesce(u.end_time, u.last_event_at) AS until, u.end_time,
           o.station_id AS old_station, o.start_time AS old_start, coalesce(o.end_time, o.last_event_at) AS old_until,
           {_row("u", _ROLLUP_SEES)} IS DISTINCT FROM {_row("o", _ROLLUP_SEES)} AS rollup,
           {_row("u", _LEDGER_SEES)} IS DISTINCT FROM {_row("o", _LEDGER_SEES)} AS ledger
    FROM up u LEFT JOIN old o ON o.id = u.id
),
ledger AS (
    INSERT INTO ledger_marks (station_id, since)
    SELECT station_id, min(least(start_time, old_start)) FROM changed
    WHERE ledger AND end_time IS NOT NULL GROUP BY station_id
)
INSERT INTO rollup_marks (station_id, hour_start)
SELECT DISTINCT r.station_id, h
FROM changed c
CROSS JOIN LATERAL (VALUES (c.old_station, c.old_start, c.old_until), (c.station_id, c.start_time, c.until))
    AS r(station_id, start_time, until)
CROSS JOIN LATERAL evm_session_hours(r.start_time, r.until) h
WHERE c.rollup AND r.station_id IS NOT NULL
"""

_PROFILE = ("connector_count", "operator", "city", "first_seen_at")

_STATIONS = f"""
WITH {{incoming}}, {_old("charging_stations", ("id",), ("id", *_PROFILE))},
up AS ({{upsert}} RETURNING charging_stations.id, {", ".join(f"charging_stations.{c}" for c in _PROFILE)},
                               charging_stations.last_seen_at),
changed AS (
    SELECT u.id, u.first_seen_at, u.last_seen_at, o.id IS NULL AS inserted, o.first_seen_at AS old_first
    FROM up u LEFT JOIN old o ON o.id = u.id
    WHERE {_row("u", _PROFILE)} IS DISTINCT FROM {_row("o", _PROFILE)}
)
INSERT INTO rollup_marks (station_id, hour_start)
SELECT id, date_trunc('hour', first_seen_at, 'UTC') FROM changed WHERE inserted
UNION
-- every 12 h from first to last seen: at least one mark inside every local day
SELECT c.id, h FROM changed c,
    generate_series(date_trunc('hour', least(c.old_first, c.first_seen_at), 'UTC'), c.last_seen_at, interval '12 hours') h
WHERE NOT c.inserted
UNION
SELECT c.id, s.hour_start FROM changed c JOIN station_hourly s ON s.station_id = c.id WHERE NOT c.inserted
"""

_PRESENCE = f"""
WITH {{incoming}}, {_old("station_presence", ("station_id", "minute"), ("station_id", "minute", "first_ts", "last_ts"))},
up AS ({{upsert}} RETURNING station_presence.station_id, station_presence.minute,
                               station_presence.first_ts, station_presence.last_ts)
INSERT INTO presence_marks (station_id, since)
SELECT u.station_id, min(u.minute)
FROM up u LEFT JOIN old o ON o.station_id = u.station_id AND o.minute = u.minute
WHERE o.minute IS NULL
   OR u.first_ts < o.first_ts
   OR (u.last_ts > o.last_ts
       AND (EXISTS (SELECT 1 FROM station_presence q WHERE q.station_id = u.station_id AND q.minute > u.minute)
            OR EXISTS (SELECT 1 FROM up l WHERE l.station_id = u.station_id AND l.minute > u.minute)))
GROUP BY u.station_id
"""

_MARKED: dict[Table, str] = {STATUS_LOG: _STATUS_LOG, SESSIONS: _SESSIONS, STATIONS: _STATIONS, PRESENCE: _PRESENCE}


def is_marked(table: Table) -> bool:
    """Whether a change of `table` marks anything (then its upsert reads the relation `INCOMING`)."""
    return table in _MARKED


def marked(table: Table, upsert: str) -> str:
    """The statement that runs `upsert` (the table's `INSERT ... ON CONFLICT`, SQL text, reading its
    rows from `INCOMING`) and writes the marks its changes call for; `upsert` itself for a table
    nobody marks."""
    template = _MARKED.get(table)
    if template is None:
        return upsert
    return template.format(incoming=_INCOMING.format(table=table.name), upsert=upsert)
