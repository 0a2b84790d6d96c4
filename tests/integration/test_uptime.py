"""The outage ledger job, operators' causes and `evmonitor uptime` against real PostgreSQL, checked by hand.

Station UP-1 has two ports and was first seen before November (UTC, the default time zone):

    2026-11-01 10:00-11:30  connector 1 Faulted                  (90 min)
    2026-11-01 11:00-12:00  connector 0 Unavailable, whole station (60 min)
        -> port 1 one outage 10:00-12:00 (120 min), port 2 one outage 11:00-12:00 (60 min)
    2026-11-02 08:00-08:45  connector 2 Faulted (45 min), then excluded: utility_interruption

Uptime 2026-11-01..02 (2 days = 2,880 min per port):
    port 1  (2880 - (120 - 0)) / 2880  = 95.833 %
    port 2  (2880 - (105 - 45)) / 2880 = 97.917 %
    UP-1    (5760 - (225 - 45)) / 5760 = 96.875 %
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from typer.testing import CliRunner

from evmonitor.ledger import set_cause
from beat.runner import Context, do_outages
from evmonitor.cli import app
from evmonitor.names import OutageCause
from evmonitor.storage.postgres import PostgresStore, apply_schema

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=timezone.utc)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=timezone.utc)


HISTORY = [
    (1, at(1, 0), "Available", "NoError"),
    (2, at(1, 0), "Available", "NoError"),
    (1, at(1, 10), "Faulted", "GroundFailure"),
    (1, at(1, 11, 30), "Available", "NoError"),
    (0, at(1, 11), "Unavailable", "NoError"),
    (0, at(1, 12), "Available", "NoError"),
    (2, at(2, 8), "Faulted", "PowerMeterFailure"),
    (2, at(2, 8, 45), "Available", "NoError"),
]


def _insert(engine: sa.Engine, history: list[tuple[int, datetime, str, str]]) -> None:
    """The station (raw: nothing here reads its marks), then its status changes as the persist path
    writes them, with the marks beat's ledger reads late history from."""
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO charging_stations (id, name, connector_count, first_seen_at, last_seen_at) "
            "VALUES ('UP-1', 'Uptime One', 2, :first, :last) ON CONFLICT (id) DO NOTHING"),
            {"first": datetime(2026, 10, 20, tzinfo=timezone.utc), "last": NOW})  # fmt: skip
    rows = [{"event_id": str(uuid.uuid4()), "station_id": "UP-1", "connector_id": connector, "status": status,
             "error_code": error, "info": None, "ts": ts.isoformat()} for connector, ts, status, error in history]  # fmt: skip
    PostgresStore(engine).write_rows({"status_events": json.dumps(rows)})


def _ledger(pipeline) -> list[tuple]:
    return [tuple(r) for r in pipeline.sql(
        "SELECT connector_id, started_at, ended_at, minutes, signals, cause FROM port_outages "
        "ORDER BY connector_id, started_at")]  # fmt: skip


def test_ledger_is_one_outage_per_port_and_recomputing_changes_nothing(pipeline):
    """Overlapping fault and station-wide outage are one outage on port 1; a second run and a replay change no row."""
    engine = sa.create_engine(pipeline.settings.sqlalchemy_url)
    ctx = Context(pipeline.settings)
    try:
        _insert(engine, list(reversed(HISTORY)))
        first = do_outages(ctx, NOW)
        ledger = _ledger(pipeline)
        _insert(engine, HISTORY[2:4])  # the same changes again, as replayed events with new ids
        apply_schema(engine, pipeline.settings.sql_dir)  # every start applies sql/ again: the ledger stays
        second = do_outages(ctx, NOW)
    finally:
        ctx.close()
        engine.dispose()
    assert (first["outages"], first["changed"]) == (3, 3)
    assert (second["changed"], second["removed"]) == (0, 0)
    assert ledger == _ledger(pipeline)
    assert [(c, s, e, str(m), sig) for c, s, e, m, sig, _ in ledger] == [
        (1, at(1, 10), at(1, 12), "120.000", ["Faulted", "Unavailable"]),
        (2, at(1, 11), at(1, 12), "60.000", ["Unavailable"]),
        (2, at(2, 8), at(2, 8, 45), "45.000", ["Faulted"]),
    ]


def test_uptime_by_hand_with_one_outage_excluded_through_the_cli(pipeline):
    """`evmonitor outages exclude` then `evmonitor uptime --json` give the hand-computed figures; the audit keeps the change."""
    engine = sa.create_engine(pipeline.settings.sqlalchemy_url)
    ctx = Context(pipeline.settings)
    try:
        _insert(engine, HISTORY)
        do_outages(ctx, NOW)
    finally:
        ctx.close()
        engine.dispose()
    runner = CliRunner()
    env = pipeline.env
    listed = runner.invoke(app, ["outages", "list", "--station", "UP-1", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    outage = next(o for o in json.loads(listed.stdout) if o["connector_id"] == 2 and o["started_at"].startswith("2026-11-02"))
    assert outage["id"] == "outage:UP-1:2:2026-11-02T08:00:00Z" and outage["excluded"] is False

    excluded = runner.invoke(app, ["outages", "exclude", outage["id"], "--cause", "utility_interruption",
                                   "--note", "grid failure, ticket 4711", "--by", "alice"], env=env)  # fmt: skip
    assert excluded.exit_code == 0, excluded.output
    shown = runner.invoke(app, ["uptime", "--station", "UP-1", "--from", "2026-11-01", "--to", "2026-11-02", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.stdout)
    figures = {r["connector_id"]: (r["t_total_min"], r["t_outage_min"], r["t_excluded_min"], r["uptime_pct"])
               for r in report["ports"]}  # fmt: skip
    [station] = report["stations"]
    figures[None] = (station["t_total_min"], station["t_outage_min"], station["t_excluded_min"], station["uptime_pct"])
    assert figures == {
        1: (2880, 120, 0, 95.833),
        2: (2880, 105, 45, 97.917),
        None: (5760, 225, 45, 96.875),
    }
    audit = pipeline.sql("SELECT outage_id, changed_by, before, after FROM port_outage_audit")
    assert [tuple(a) for a in audit] == [(outage["id"], "alice", {"cause": "unknown", "note": None},
                                          {"cause": "utility_interruption", "note": "grid failure, ticket 4711"})]  # fmt: skip

    included = runner.invoke(app, ["outages", "include", outage["id"], "--by", "bob"], env=env)
    assert included.exit_code == 0, included.output
    again = runner.invoke(app, ["uptime", "--station", "UP-1", "--month", "2026-11", "--csv"], env=env)
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[0].startswith("station_id,connector_id,period_from")
    assert pipeline.sql("SELECT count(*) AS n FROM port_outage_audit")[0].n == 2
    wide = {**env, "COLUMNS": "250"}
    table = runner.invoke(app, ["outages", "list", "--station", "UP-1"], env=wide)
    assert table.exit_code == 0 and "outage:UP-1:2:2026-11-02T08:00:00Z" in table.stdout, table.output
    assert "unknown" in table.stdout and "Faulted,Unavailable" in table.stdout
    figures_table = runner.invoke(app, ["uptime", "--month", "2026-11"], env=wide)
    assert figures_table.exit_code == 0 and "UP-1" in figures_table.stdout, figures_table.output
    both = runner.invoke(app, ["uptime", "--month", "2026-11", "--from", "2026-11-01"], env=env)
    assert both.exit_code != 0


def test_a_late_event_that_moves_an_outage_start_keeps_the_operator_cause(pipeline):
    """A late Faulted before a recorded outage redraws it from an earlier start; its cause moves with it."""
    engine = sa.create_engine(pipeline.settings.sqlalchemy_url)
    ctx = Context(pipeline.settings)
    try:
        _insert(engine, HISTORY)
        do_outages(ctx, NOW)
        set_cause(engine, pipeline.settings, "outage:UP-1:1:2026-11-01T10:00:00Z", OutageCause.VANDALISM,
                  "cable cut", by="carol", now=NOW)  # fmt: skip
        _insert(engine, [(1, at(1, 9, 30), "Faulted", "GroundFailure")])
        result = do_outages(ctx, NOW + timedelta(minutes=5))
    finally:
        ctx.close()
        engine.dispose()
    assert result["causes_carried"] == 1
    port1 = pipeline.sql("SELECT id, started_at, cause, note, cause_by FROM port_outages WHERE connector_id = 1")
    assert [tuple(r) for r in port1] == [("outage:UP-1:1:2026-11-01T09:30:00Z", at(1, 9, 30), "vandalism", "cable cut", "carol")]


def test_a_port_below_the_uptime_target_raises_an_alert_that_an_exclusion_closes(pipeline):
    """Target 99.45 %: port 1 (99.425 % since first seen) alerts, port 2 (99.497 %) not; excluding port 1's outage closes it."""
    from decimal import Decimal

    settings = pipeline.settings.model_copy(update={"uptime_target_pct": Decimal("99.45")})
    engine = sa.create_engine(settings.sqlalchemy_url)
    ctx = Context(settings)
    try:
        _insert(engine, HISTORY)
        first = do_outages(ctx, NOW)
        alerts = [tuple(r) for r in pipeline.sql("SELECT id, status, details->>'uptime_pct' FROM alerts")]
        set_cause(engine, settings, "outage:UP-1:1:2026-11-01T10:00:00Z", OutageCause.SCHEDULED_MAINTENANCE,
                  "planned", by="dave", now=NOW)  # fmt: skip
        second = do_outages(ctx, NOW + timedelta(minutes=5))
    finally:
        ctx.close()
        engine.dispose()
    assert first["uptime_alerts"] == {"opened": 1, "closed": 0}
    assert alerts == [("uptime:UP-1:1:2026-11-03T12:00:00Z", "open", "99.425")]
    assert second["uptime_alerts"] == {"opened": 0, "closed": 1}
    assert [tuple(r) for r in pipeline.sql("SELECT id, status FROM alerts")] == [("uptime:UP-1:1:2026-11-03T12:00:00Z", "closed")]


def test_an_open_outage_that_ended_while_beat_was_down_longer_than_the_lookback_is_closed_not_lost(pipeline):
    """An outage open in the ledger whose end came more than the lookback ago is closed at that end, cause kept."""
    engine = sa.create_engine(pipeline.settings.sqlalchemy_url)
    ctx = Context(pipeline.settings)
    try:
        _insert(engine, HISTORY[:3])  # connector 1 Faulted at 10:00 on Nov 1, not yet back
        do_outages(ctx, at(1, 12))
        set_cause(engine, pipeline.settings, "outage:UP-1:1:2026-11-01T10:00:00Z", OutageCause.VANDALISM,
                  "cable cut", by="erin", now=at(1, 12))  # fmt: skip
        _insert(engine, [HISTORY[3]])  # back at 11:30; beat next runs 12 days later
        do_outages(ctx, at(13, 12))
    finally:
        ctx.close()
        engine.dispose()
    rows = pipeline.sql("SELECT id, ended_at, cause FROM port_outages WHERE connector_id = 1")
    assert [tuple(r) for r in rows] == [("outage:UP-1:1:2026-11-01T10:00:00Z", at(1, 11, 30), "vandalism")]


def test_a_month_carries_each_ports_trailing_twelve_months_and_the_trailing_table_one_row_per_month(pipeline):
    """--month 2026-11 at Dec 1: November and the 12 months from first seen (Oct 20: 42 days = 60,480 min), by hand.

    port 1  Nov (43200 - 120) / 43200 = 99.722 %   12 months (60480 - 120) / 60480 = 99.802 %
    port 2  Nov (43200 - 60) / 43200  = 99.861 %   12 months (60480 - 60) / 60480  = 99.901 %  (45 of 105 excluded)
    October (from Oct 20: 12 days = 17,280 min) has no outage: 100 % for the month and its 12 months.
    """
    from evmonitor.ledger import month_days, trailing_table, uptime_report

    engine = sa.create_engine(pipeline.settings.sqlalchemy_url)
    ctx = Context(pipeline.settings)
    december = datetime(2026, 12, 1, tzinfo=timezone.utc)
    try:
        _insert(engine, HISTORY)
        do_outages(ctx, NOW)
        set_cause(engine, pipeline.settings, "outage:UP-1:2:2026-11-02T08:00:00Z", OutageCause.UTILITY_INTERRUPTION,
                  "grid", by="fay", now=NOW)  # fmt: skip
        report = uptime_report(engine, pipeline.settings, *month_days("2026-11"), december, month="2026-11")
        table = trailing_table(engine, pipeline.settings, "2026-11", 2, december)
    finally:
        ctx.close()
        engine.dispose()
    figures = {p["connector_id"]: (p["t_total_min"], p["uptime_pct"], p["trailing_12_months"]["from"],
                                   p["trailing_12_months"]["t_total_min"], p["trailing_12_months"]["t_outage_min"],
                                   p["trailing_12_months"]["t_excluded_min"], p["trailing_12_months"]["uptime_pct"])
               for p in report["ports"]}  # fmt: skip
    assert figures == {1: (43200, 99.722, "2025-12-01", 60480, 120, 0, 99.802),
                       2: (43200, 99.861, "2025-12-01", 60480, 105, 45, 99.901)}  # fmt: skip
    assert [(r["connector_id"], r["month"], r["month_uptime_pct"], r["trailing_from"], r["t_total_min"], r["uptime_pct"])
            for r in table] == [
        (1, "2026-10", 100.0, "2025-11-01", 17280, 100.0), (1, "2026-11", 99.722, "2025-12-01", 60480, 99.802),
        (2, "2026-10", 100.0, "2025-11-01", 17280, 100.0), (2, "2026-11", 99.861, "2025-12-01", 60480, 99.901),
    ]  # fmt: skip
    shown = CliRunner().invoke(app, ["uptime", "--month", "2026-10", "--trailing", "--months", "1", "--csv"], env=pipeline.env)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[1:] == ["UP-1,1,2026-10,100.0,2025-11-01,2026-10-31,17280.0,0.0,0.0,100.0",
                                             "UP-1,2,2026-10,100.0,2025-11-01,2026-10-31,17280.0,0.0,0.0,100.0"]  # fmt: skip
    refused = CliRunner().invoke(app, ["uptime", "--from", "2026-11-01", "--to", "2026-11-02", "--trailing"], env=pipeline.env)
    assert refused.exit_code != 0


def test_history_older_than_the_lookback_still_reaches_the_ledger_once(pipeline):
    """Status changes arriving 20 days late (beyond the 7-day lookback) are drawn by the next run; a later run keeps them."""
    later = NOW + timedelta(days=20)
    engine = sa.create_engine(pipeline.settings.sqlalchemy_url)
    ctx = Context(pipeline.settings)
    try:
        _insert(engine, HISTORY)
        first = do_outages(ctx, later)
        marks = pipeline.sql("SELECT count(*) AS n FROM ledger_marks")[0].n
        second = do_outages(ctx, later + timedelta(minutes=5))
    finally:
        ctx.close()
        engine.dispose()
    assert (first["outages"], first["changed"], marks) == (3, 3, 0)
    assert (second["changed"], second["removed"]) == (0, 0)
    assert [(c, s, str(m)) for c, s, _, m, _, _ in _ledger(pipeline)] == [
        (1, at(1, 10), "120.000"), (2, at(1, 11), "60.000"), (2, at(2, 8), "45.000")]  # fmt: skip
