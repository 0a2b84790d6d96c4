"""Maintenance jobs on real services: a simulated day through the whole pipeline, then beat's jobs.

The day (Europe/Berlin, yesterday) comes from the simulator, with three things made sure of by
hand: one station goes silent, some sessions are abandoned (their completion is never sent) and
one station faults three times (whole station, connector 0), so it must be flagged for
maintenance. Every expectation is computed independently from the messages sent, or by a direct
SQL recomputation from `charging_sessions`, not by the code under test.
"""

from __future__ import annotations

import csv
import json
import subprocess
import uuid
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from beat.runner import Context, run_all
from evmonitor.fold import session_cost_eur, session_energy_kwh
from evmonitor.simulator import plan_drain
from evmonitor.stack.embedded import evmonitor_cmd
from evmonitor.stack.procs import spawn, wait_for

BERLIN = ZoneInfo("Europe/Berlin")
MIN = timedelta(minutes=1)
CENT, MILLI = Decimal("0.01"), Decimal("0.001")


def ts(event: dict) -> datetime:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status(station: str, connector: int, at: datetime, state: str, code: str = "NoError") -> dict:
    return {"event_id": str(uuid.uuid4()), "event_type": "station_status", "schema_version": 1, "timestamp": iso(at),
            "station_id": station, "connector_id": connector, "status": state, "error_code": code}  # fmt: skip


def message(event: dict) -> tuple[str, bytes, bytes]:
    from evmonitor.contract import TOPIC_BY_TYPE

    return TOPIC_BY_TYPE[event["event_type"]], event["station_id"].encode(), json.dumps(event).encode()


class Expected:
    def __init__(self, energy_kwh: Decimal, cost_eur: Decimal) -> None:
        self.energy_kwh, self.cost_eur = energy_kwh, cost_eur

    @classmethod
    def of(cls, meter_start_wh: int, meter_max_wh: int, price: float) -> "Expected":
        energy = session_energy_kwh(meter_start_wh, meter_max_wh)
        return cls(energy, session_cost_eur(energy, price))


class Day:
    """A simulated local day, what was sent of it, and what must come out."""

    def __init__(self, now: datetime) -> None:
        self.day = now.astimezone(BERLIN).date() - timedelta(days=1)
        self.start = datetime(self.day.year, self.day.month, self.day.day, tzinfo=BERLIN).astimezone(timezone.utc)
        self.end = self.start + timedelta(days=1)
        self.now = self.end + 5 * MIN  # the jobs' `now`: just after the day ended
        plan = plan_drain(stations=16, sessions=60, seed=1, start=self.start, end=self.end, bad_ratio=0.02)
        self.bad = [(m.topic, m.key, m.value) for m in plan.messages if m.expected is not None]
        events = [json.loads(m.value) for m in plan.messages if m.expected is None]
        stations = sorted({e["station_id"] for e in events})
        last_seen = self._last_seen(events)
        faulted = {e["station_id"] for e in events if e.get("status") == "Faulted"}
        calm = [s for s in stations if s not in faulted and self.now - last_seen[s] < timedelta(minutes=45)]
        # a station the simulator keeps alive and fault-free goes silent at 15:00
        self.silenced = calm[0]
        cut = self.start + timedelta(hours=15)
        events = [e for e in events if e["station_id"] != self.silenced or ts(e) < cut]
        # another one faults three times, whole station (connector 0), within 24 h
        self.flaky = calm[1]
        for hour, minutes in ((2, 20), (5, 30), (9, 10)):
            at = self.start + timedelta(hours=hour)
            events += [status(self.flaky, 0, at, "Faulted", "GroundFailure"), status(self.flaky, 0, at + minutes * MIN, "Available")]
        # abandon three sessions that ended well before midnight: their completion is never sent
        completions = sorted((e for e in events if e["event_type"] == "session_completed"
                              and e["station_id"] != self.silenced and ts(e) < self.end - timedelta(hours=3)),
                             key=lambda e: e["session_id"])  # fmt: skip
        self.held_back = {e["session_id"]: e for e in completions[:3]}
        self.events = [e for e in events if not (e["event_type"] == "session_completed" and e["session_id"] in self.held_back)]

    @staticmethod
    def _last_seen(events: list[dict]) -> dict[str, datetime]:
        out: dict[str, datetime] = {}
        for e in events:
            out[e["station_id"]] = max(out.get(e["station_id"], ts(e)), ts(e))
        return out

    def sessions(self, events: list[dict]) -> dict[str, "Expected"]:
        """Per session as DESIGN.md derives it: energy from the highest meter seen."""
        started = {e["session_id"]: e for e in events if e["event_type"] == "session_started"}
        meters: dict[str, int] = defaultdict(int)
        for e in events:
            meter = e.get("meter_wh", e.get("meter_stop_wh", e.get("meter_start_wh")))
            if "session_id" in e:
                meters[e["session_id"]] = max(meters[e["session_id"]], meter)
        return {sid: Expected.of(s["meter_start_wh"], meters[sid], s["price_eur_per_kwh"]) for sid, s in started.items()}

    def fault_episodes(self) -> set[tuple]:
        """(station, connector, since, until, error code) from the status changes sent."""
        by_connector: dict[tuple, list[dict]] = defaultdict(list)
        for e in self.events:
            if e["event_type"] == "station_status" and not e.get("heartbeat"):
                by_connector[(e["station_id"], e["connector_id"])].append(e)
        out = set()
        for (station, connector), history in by_connector.items():
            opened = None
            for e in sorted(history, key=lambda e: (ts(e), e["event_id"])):
                if e["status"] == "Faulted" and opened is None:
                    opened = e
                elif e["status"] != "Faulted" and opened is not None:
                    out.add((station, connector, ts(opened), ts(e), opened["error_code"]))
                    opened = None
            if opened is not None:
                out.add((station, connector, ts(opened), None, opened["error_code"]))
        return out


def table(pipeline, name: str, order: str) -> list[tuple]:
    return [tuple(r) for r in pipeline.sql(f"SELECT * FROM {name} ORDER BY {order}")]


def snapshot(pipeline) -> dict[str, list[tuple]]:
    return {
        "station_hourly": table(pipeline, "station_hourly", "station_id, hour_start"),
        "daily_rollups": table(pipeline, "daily_rollups", "day, scope, key"),
        "alerts": table(pipeline, "alerts", "id"),
        "station_availability": table(pipeline, "station_availability", "station_id, day"),
        "reports": table(pipeline, "reports", "network, day"),
        "sessions": table(pipeline, "charging_sessions", "id"),
    }


def recomputed_hours(pipeline) -> set[tuple]:
    """station_hourly as a direct recomputation from charging_sessions (hours from generate_series)."""
    rows = pipeline.sql("""
        WITH occ AS (
            SELECT s.*, greatest(s.start_time, coalesce(s.end_time, s.last_event_at)) AS occ_end,
                   coalesce(st.connector_count, 1) AS connectors
            FROM charging_sessions s LEFT JOIN charging_stations st ON st.id = s.station_id
        ), hours AS (
            SELECT DISTINCT station_id, connectors, h AS hour_start FROM occ,
                   generate_series(date_trunc('hour', start_time, 'UTC'), date_trunc('hour', occ_end, 'UTC'), '1 hour') h
        )
        SELECT h.station_id, h.hour_start, h.connectors,
               (SELECT count(*) FROM occ o WHERE o.station_id = h.station_id
                   AND o.start_time >= h.hour_start AND o.start_time < h.hour_start + interval '1 hour') AS started,
               (SELECT count(*) FROM occ o WHERE o.station_id = h.station_id
                   AND o.end_time >= h.hour_start AND o.end_time < h.hour_start + interval '1 hour') AS completed,
               (SELECT coalesce(sum(energy_delivered_kwh), 0) FROM occ o WHERE o.station_id = h.station_id
                   AND o.start_time >= h.hour_start AND o.start_time < h.hour_start + interval '1 hour') AS kwh,
               (SELECT coalesce(sum(cost_eur), 0) FROM occ o WHERE o.station_id = h.station_id
                   AND o.start_time >= h.hour_start AND o.start_time < h.hour_start + interval '1 hour') AS eur,
               (SELECT coalesce(sum(extract(epoch FROM least(o.occ_end, h.hour_start + interval '1 hour')
                                                      - greatest(o.start_time, h.hour_start))), 0)
                  FROM occ o WHERE o.station_id = h.station_id
                   AND o.start_time < h.hour_start + interval '1 hour' AND o.occ_end > h.hour_start) AS occupied_s
        FROM hours h
    """)
    out = set()
    for r in rows:
        if r.started or r.completed or r.occupied_s:
            util = (r.occupied_s / (r.connectors * 3600) * 100).quantize(CENT, ROUND_HALF_UP)
            out.add((r.station_id, r.hour_start, r.started, r.completed, r.kwh, r.eur,
                     (r.occupied_s / 60).quantize(MILLI, ROUND_HALF_UP), r.connectors, util))  # fmt: skip
    return out


def recomputed_days(pipeline, days) -> set[tuple]:
    """daily_rollups for `days` (Berlin) computed in Python from the sessions and stations tables."""
    sessions = pipeline.sql("SELECT * FROM charging_sessions")
    stations = pipeline.sql("SELECT * FROM charging_stations")
    out = set()
    for day in days:
        # in UTC: Python subtracts two times of one tzinfo as wall clocks, wrong across DST
        t0 = datetime(day.year, day.month, day.day, tzinfo=BERLIN).astimezone(timezone.utc)
        t1 = datetime.combine(day + timedelta(days=1), datetime.min.time(), BERLIN).astimezone(timezone.utc)
        groups: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0, Decimal(0), Decimal(0), Decimal(0), Decimal(0)])
        for st in stations:
            if st.first_seen_at >= t1:
                continue
            n = st.connector_count or 1
            mine = [s for s in sessions if s.station_id == st.id]
            started = [s for s in mine if t0 <= s.start_time < t1]
            occupied = sum((Decimal((min(max(s.start_time, s.end_time or s.last_event_at), t1) - max(s.start_time, t0))
                                    / timedelta(microseconds=1)) / 1_000_000
                            for s in mine if s.start_time < t1 and max(s.start_time, s.end_time or s.last_event_at) > t0),
                           Decimal(0))  # fmt: skip
            values = [1, n, len(started), sum(1 for s in mine if s.end_time and t0 <= s.end_time < t1),
                      sum((s.energy_delivered_kwh for s in started), Decimal(0)),
                      sum((s.cost_eur for s in started), Decimal(0)), occupied,
                      Decimal(n * (t1 - t0) / timedelta(seconds=1))]  # fmt: skip
            for key in (("network", "all"), ("operator", st.operator or "(unknown)"), ("city", st.city or "(unknown)"),
                        ("station", st.id)):
                groups[key] = [a + b for a, b in zip(groups[key], values)]
        for (scope, key), (n_st, conn, started, completed, kwh, eur, occ_s, cap_s) in groups.items():
            out.add((day, scope, key, n_st, conn, started, completed, kwh, eur,
                     (occ_s / 60).quantize(MILLI, ROUND_HALF_UP), (cap_s / 60).quantize(MILLI, ROUND_HALF_UP),
                     (occ_s / cap_s * 100).quantize(CENT, ROUND_HALF_UP)))  # fmt: skip
    return out


def stored_days(pipeline) -> set[tuple]:
    return {tuple(r) for r in pipeline.sql(
        "SELECT day, scope, key, stations, connectors, sessions_started, sessions_completed, energy_kwh, revenue_eur, "
        "occupied_connector_min, capacity_connector_min, utilization_pct FROM daily_rollups")}  # fmt: skip


def stored_hours(pipeline) -> set[tuple]:
    return {tuple(r) for r in pipeline.sql(
        "SELECT station_id, hour_start, sessions_started, sessions_completed, energy_kwh, revenue_eur, "
        "occupied_connector_min, connectors, utilization_pct FROM station_hourly")}  # fmt: skip


class Page(HTMLParser):
    """The text of a page, cell by cell, and its images."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.images: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        if data.strip():
            self.cells.append(data.strip())


@pytest.fixture
def berlin(pipeline):
    """The pipeline with EVMON_TIMEZONE=Europe/Berlin, its workers and bridge running."""
    pipeline.settings = pipeline.settings.model_copy(update={"timezone": "Europe/Berlin"})
    pipeline.start_workers()
    pipeline.start_bridge()
    return pipeline


def test_a_simulated_day_gives_the_expected_alerts_rollups_and_report(berlin, tmp_path):
    """Faults, offline and stale alerts, rollups and the report match what was sent; a re-run changes nothing."""
    pipeline = berlin
    d = Day(datetime.now(timezone.utc))
    pipeline.wait_drained(pipeline.publish([message(e) for e in d.events] + d.bad))
    assert pipeline.settings.timezone == "Europe/Berlin"
    ctx = Context(pipeline.settings)
    try:
        result = run_all(ctx, d.now)
        assert result["daily_report"]["day"] == d.day.isoformat()

        # --- alerts --------------------------------------------------------------------------
        alerts = pipeline.sql("SELECT * FROM alerts ORDER BY id")
        by_kind = defaultdict(list)
        for a in alerts:
            by_kind[a.kind].append(a)
        faults = {(a.station_id, a.connector_id, a.since, a.until, a.error_code) for a in by_kind["connector_fault"]}
        assert faults == d.fault_episodes()
        assert len(faults) >= 5 and all(
            a.until is None or a.duration_s == Decimal((a.until - a.since) // timedelta(milliseconds=1)) / 1000
            for a in by_kind["connector_fault"])  # fmt: skip
        last_seen = d._last_seen(d.events)
        offline = {s: t for s, t in last_seen.items() if d.now - t > timedelta(minutes=45)}
        assert d.silenced in offline
        assert {(a.station_id, a.since, a.status) for a in by_kind["station_offline"]} == {
            (s, t, "open") for s, t in offline.items()}
        session_events = defaultdict(list)
        for e in d.events:
            if "session_id" in e:
                session_events[e["session_id"]].append(ts(e))
        unfinished = {e["session_id"] for e in d.events if e["event_type"] == "session_started"} - {
            e["session_id"] for e in d.events if e["event_type"] == "session_completed"}
        assert set(d.held_back) <= unfinished
        assert {(str(a.session_id), a.since) for a in by_kind["session_stale"]} == {
            (sid, max(session_events[sid])) for sid in unfinished if d.now - max(session_events[sid]) > 30 * MIN}
        faults_per_station = defaultdict(int)
        for station, *_ in faults:
            faults_per_station[station] += 1
        flags = {a.station_id: a for a in by_kind["maintenance_due"]}
        assert set(flags) == {s for s, n in faults_per_station.items() if n >= 3}
        flag = flags[d.flaky]
        assert (flag.status, flag.since) == ("open", d.start + timedelta(hours=9))
        stale = {str(r.id) for r in pipeline.sql("SELECT id FROM charging_sessions WHERE status = 'stale'")}
        assert stale == {str(a.session_id) for a in by_kind["session_stale"]}

        pipeline.http("POST", "/charging-alerts/_refresh")
        assert pipeline.http("GET", "/charging-alerts/_count")["count"] == len(alerts)
        doc = pipeline.http("GET", f"/charging-alerts/_doc/{flag.id}")["_source"]
        assert (doc["kind"], doc["station_id"], doc["status"]) == ("maintenance_due", d.flaky, "open")
        assert doc["station_name"] and doc["location"]["lat"]

        # --- availability --------------------------------------------------------------------
        avail = {r.station_id: r for r in pipeline.sql("SELECT * FROM station_availability WHERE day = :d", d=d.day)}
        assert avail[d.flaky].faulted_connector_min == 60 * avail[d.flaky].connectors
        minutes_day = Decimal(24 * 60)
        silent_min = Decimal((d.end - offline[d.silenced]).total_seconds()) / 60
        assert abs(avail[d.silenced].availability_pct - (1 - silent_min / minutes_day) * 100) < Decimal("0.02")
        healthy = {s for s in last_seen if s not in offline and s not in {f[0] for f in faults}}
        assert healthy and all(avail[s].availability_pct == 100 for s in healthy)

        # --- rollups equal a direct recomputation from the sessions table ----------------------
        assert stored_hours(pipeline) == recomputed_hours(pipeline)
        days = {r.day for r in pipeline.sql("SELECT DISTINCT day FROM daily_rollups")}
        assert d.day in days
        assert stored_days(pipeline) == recomputed_days(pipeline, days)

        # --- the report, against the ground truth -------------------------------------------
        truth = d.sessions(d.events)
        energy = sum((s.energy_kwh for s in truth.values()), Decimal(0))
        cost = sum((s.cost_eur for s in truth.values()), Decimal(0))
        [recorded] = pipeline.sql("SELECT * FROM reports")
        assert (recorded.day, recorded.sessions_started, recorded.energy_kwh, recorded.revenue_eur) == (
            d.day, len(truth), energy, cost)
        rows = list(csv.DictReader(Path(recorded.csv_path).open(encoding="utf-8")))
        assert len(rows) == 16 and sum(int(r["sessions_started"]) for r in rows) == len(truth)
        assert sum(Decimal(r["energy_kwh"]) for r in rows) == energy
        assert sum(Decimal(r["revenue_eur"]) for r in rows) == cost
        page = Page(Path(recorded.html_path).read_text(encoding="utf-8"))
        text = " ".join(page.cells)
        assert f"{energy:,.1f} kWh" in text and f"€ {cost:,.2f}" in text and str(len(truth)) in page.cells
        assert len(page.images) >= 4 and all(i.startswith("data:image/png;base64,") for i in page.images)
        names = {r.id: r.name for r in pipeline.sql("SELECT id, name FROM charging_stations")}
        maintenance = page.cells.index("Needs attention: stations flagged for maintenance")
        assert names[d.flaky] in page.cells[maintenance: maintenance + 20]
        for station, _, _, _, code in faults:
            assert names[station] in page.cells and code in page.cells
        assert "Offline stations" in page.cells and names[d.silenced] in page.cells[page.cells.index("Offline stations"):]
        # the per-port uptime line: the silent station's ports were out from its last message to midnight
        silenced_row = next(r for r in rows if r["station_id"] == d.silenced)
        assert silenced_row["coverage"] == "full day" and Decimal(silenced_row["uptime_pct"]) < 100
        assert Decimal(silenced_row["t_outage_min"]) >= avail[d.silenced].connectors * silent_min.quantize(MILLI) - 1
        uptime = page.cells.index("Uptime per port")
        assert names[d.silenced] in page.cells[uptime: page.cells.index("Connector faults")]

        # --- dead letters reach their index --------------------------------------------------
        pipeline.http("POST", "/charging-deadletters/_refresh")
        dead = pipeline.deadletters()
        assert result["deadletters"]["indexed"] == len(dead) >= len(d.bad) > 0
        assert pipeline.http("GET", "/charging-deadletters/_count")["count"] == len(dead)

        # --- every job again at the same moment: nothing changes -----------------------------
        before = snapshot(pipeline)
        again = run_all(ctx, d.now)
        assert snapshot(pipeline) == before
        assert again["deadletters"]["indexed"] == 0 and again["daily_report"]["skipped"] == "already built"
        assert pipeline.sql("SELECT count(*) AS n FROM rollup_marks")[0].n == 0

        # --- late completions: one as sent, one with a meter below the highest seen ----------
        first, second = list(d.held_back.values())[:2]
        highest = max(e.get("meter_wh", e.get("meter_start_wh", 0)) for e in d.events
                      if e.get("session_id") == second["session_id"])  # fmt: skip
        lower = dict(second, event_id=str(uuid.uuid4()), meter_stop_wh=highest - 1)
        late = [first, lower]
        pipeline.wait_drained(pipeline.publish([message(e) for e in late]))
        run_all(ctx, d.now + 10 * MIN)
        sessions = {str(r.id): r for r in pipeline.sql("SELECT * FROM charging_sessions")}
        truth_after = d.sessions(d.events + [first])
        lower_truth = d.sessions(d.events)[second["session_id"]]  # highest meter seen: before the late one
        for e, want in ((first, truth_after[first["session_id"]]), (lower, lower_truth)):
            row = sessions[e["session_id"]]
            assert (row.status, row.end_time, row.energy_delivered_kwh, row.cost_eur) == (
                "completed", ts(e), want.energy_kwh, want.cost_eur)
            [alert] = pipeline.sql("SELECT * FROM alerts WHERE kind = 'session_stale' AND session_id = :s",
                                   s=e["session_id"])  # fmt: skip
            assert (alert.status, alert.until) == ("closed", ts(e))
        assert stored_hours(pipeline) == recomputed_hours(pipeline)
        assert stored_days(pipeline) == recomputed_days(pipeline, days)
    finally:
        ctx.close()

    # --- on demand: `evmonitor report --date D` rebuilds it with the late data ---------------
    env = {**pipeline.env, "COLUMNS": "200"}
    done = subprocess.run(evmonitor_cmd("report", "--date", d.day.isoformat()), env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    html_path, csv_path = done.stdout.split()
    truth = {**d.sessions(d.events + [first]), second["session_id"]: lower_truth}
    rows = list(csv.DictReader(Path(csv_path).open(encoding="utf-8")))
    assert sum(Decimal(r["energy_kwh"]) for r in rows) == sum((s.energy_kwh for s in truth.values()), Decimal(0))
    assert sum(Decimal(r["revenue_eur"]) for r in rows) == sum((s.cost_eur for s in truth.values()), Decimal(0))
    completed = {e["session_id"] for e in d.events + late if e["event_type"] == "session_completed"}
    [recorded] = pipeline.sql("SELECT * FROM reports")
    assert (recorded.sessions_completed, Path(recorded.html_path)) == (len(completed), Path(html_path))


def test_beat_and_a_maintenance_worker_run_the_scheduled_jobs(pipeline):
    """`evmonitor beat` schedules the jobs and a maintenance worker runs them: rollups, stale alert, dead letters."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    station = "ST-BEAT"
    boot = {"event_id": str(uuid.uuid4()), "event_type": "station_boot", "schema_version": 1,
            "timestamp": iso(now - 60 * MIN), "station_id": station, "name": "Beat Plaza", "operator": "VoltWay",
            "city": "Berlin", "latitude": 52.5, "longitude": 13.4, "max_power_kw": 50.0, "connector_count": 2,
            "price_eur_per_kwh": 0.5}  # fmt: skip

    def session(start: datetime, connector: int, complete: bool) -> list[dict]:
        sid = str(uuid.uuid4())
        common = {"schema_version": 1, "station_id": station, "session_id": sid, "connector_id": connector}
        out = [{**common, "event_id": str(uuid.uuid4()), "event_type": "session_started", "timestamp": iso(start),
                "meter_start_wh": 1000, "price_eur_per_kwh": 0.5},
               {**common, "event_id": str(uuid.uuid4()), "event_type": "session_progress",
                "timestamp": iso(start + 5 * MIN), "meter_wh": 6000, "power_kw": 40.0}]  # fmt: skip
        if complete:
            out.append({**common, "event_id": str(uuid.uuid4()), "event_type": "session_completed",
                        "timestamp": iso(start + 10 * MIN), "meter_stop_wh": 9000, "stop_reason": "Local"})  # fmt: skip
        return out

    abandoned = session(now - 50 * MIN, 1, complete=False)
    events = [boot, *session(now - 30 * MIN, 2, complete=True), *abandoned]
    bad = [("ev.session.started", station.encode(), b"{not json"), ("ev.station.status", station.encode(), b"[]")]
    pipeline.start_workers()
    pipeline.start_bridge()
    pipeline.wait_drained(pipeline.publish([message(e) for e in events] + bad))

    # short intervals where Settings knows them (EVMON_ROLLUP_INTERVAL_S, ...); beat also runs each
    # interval job once at start, so the first round does not depend on them
    env = {**pipeline.env, "EVMON_ROLLUP_INTERVAL_S": "2", "EVMON_ALERTS_INTERVAL_S": "2",
           "EVMON_DEADLETTER_INTERVAL_S": "2"}  # fmt: skip
    worker = ["worker", "-Q", "maintenance", "-c", "1", "-n", "worker-maintenance@%h"]
    for name, args in (("worker-maintenance", worker), ("beat", ["beat"])):
        pipeline.processes[name] = spawn(name, evmonitor_cmd(*args), log_dir=pipeline.logs, env=env)
        if name == "worker-maintenance":
            pipeline.wait_workers(("maintenance",))

    def scheduled() -> bool:
        hours = pipeline.sql("SELECT coalesce(sum(sessions_started), 0) AS n FROM station_hourly")[0].n
        stale = pipeline.sql("SELECT count(*) AS n FROM alerts WHERE kind = 'session_stale'")[0].n
        pipeline.http("POST", "/charging-deadletters/_refresh")
        dead = pipeline.http("GET", "/charging-deadletters/_count")["count"]
        return hours == 2 and stale == 1 and dead == 2

    wait_for(scheduled, timeout_s=60, what="beat's first round of jobs", hint=pipeline.logs_hint())
    assert "evmonitor.maintenance.rollup_hours" in pipeline.log("worker-maintenance")
    [row] = pipeline.sql("SELECT status FROM charging_sessions WHERE id = :s", s=abandoned[0]["session_id"])
    assert row.status == "stale"
    pipeline.http("POST", "/charging-alerts/_refresh")
    assert pipeline.http("GET", "/charging-alerts/_count")["count"] == 1

    # a later session shows up through a periodic tick, not the start-up round
    pipeline.wait_drained(pipeline.publish([message(e) for e in session(now - 20 * MIN, 2, complete=True)]))
    wait_for(lambda: pipeline.sql("SELECT sum(sessions_started) AS n FROM station_hourly")[0].n == 3,
             timeout_s=90, what="a periodic rollup run", hint=pipeline.logs_hint())  # fmt: skip
