"""The monthly report from a simulated month through the whole pipeline, then beat's jobs, then a browser.

Last month (local, Europe/Berlin) comes from the simulator (four stations, their own faults and
maintenance windows) plus one station of ours, MON-1, alive from before the month to the report
time (a heartbeat every six hours), with outages we can count by hand:

    day 3 10:00-11:30  connector 1 Faulted                      (90 min)
    day 3 11:00-12:00  connector 0 Unavailable, whole station    (60 min)
        -> port 1 one outage 10:00-12:00 (120 min), port 2 11:00-12:00 (60 min)
    day 10 08:00-08:45 connector 2 Faulted (45 min), then excluded: utility_interruption

and MON-LATE, first seen on day 15 at 12:00 (a partial month for its ports). The month before
has nothing at all: its report must say "no data". Expectations come from the events we sent,
from `evmonitor uptime` (the ledger's own query), or from SQL over `charging_sessions`.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import sync_playwright
from typer.testing import CliRunner

from beat.outages import set_cause
from beat.runner import Context, do_monthly_report
from evmonitor.cli import app
from evmonitor.contract import TOPIC_BY_TYPE
from evmonitor.names import OutageCause, Queue, SinkName
from evmonitor.simulator import plan_drain
from tests.factories import encode, make_event, session_events

pytestmark = pytest.mark.integration

BERLIN = ZoneInfo("Europe/Berlin")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
HEARTBEAT_S = 6 * 3600


def local(day, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN).astimezone(timezone.utc)


def status(station: str, connector: int, at: datetime, state: str, code: str = "NoError", **extra) -> dict:
    return make_event("station_status", at=at, station_id=station, connector_id=connector, status=state,
                      error_code=code, **extra)  # fmt: skip


def as_messages(events: list[dict]) -> list[tuple[str, bytes, bytes]]:
    return [(TOPIC_BY_TYPE[e["event_type"]], e["station_id"].encode(), encode(e)) for e in events]


class Month:
    """Last month, the events sent for it, and the moment beat builds its report."""

    def __init__(self, wall: datetime) -> None:
        # the last month whose report time (the 1st after it, 06:00) has passed: no event from the future
        nxt = wall.astimezone(BERLIN).date().replace(day=1)
        if local(nxt, 6) > wall - timedelta(minutes=5):
            nxt = (nxt - timedelta(days=1)).replace(day=1)
        self.first = (nxt - timedelta(days=1)).replace(day=1)
        self.label = self.first.strftime("%Y-%m")
        self.t0, self.t1 = local(self.first, 0), local(nxt, 0)
        self.now = local(nxt, 6, 0)  # beat's monthly job: the first day, at report_time 06:00
        plan = plan_drain(stations=4, sessions=24, seed=3, start=self.t0 - timedelta(hours=1), end=self.now,
                          heartbeat_interval_s=HEARTBEAT_S, now=self.now)  # fmt: skip
        self.events = [json.loads(m.value) for m in plan.messages]
        day3, day10, day15 = (self.first + timedelta(days=n) for n in (2, 9, 14))
        boot = self.t0 - timedelta(hours=1)
        self.events += [make_event("station_boot", at=boot, station_id="MON-1", name="Monthly Markt", connector_count=2),
                        status("MON-1", 1, boot, "Available"), status("MON-1", 2, boot, "Available")]  # fmt: skip
        beat = boot + timedelta(seconds=HEARTBEAT_S)
        while beat <= self.now:
            self.events.append(status("MON-1", 0, beat, "Available", heartbeat=True))
            beat += timedelta(seconds=HEARTBEAT_S)
        self.events += [
            status("MON-1", 1, local(day3, 10), "Faulted", "GroundFailure"), status("MON-1", 1, local(day3, 11, 30), "Available"),
            status("MON-1", 0, local(day3, 11), "Unavailable"), status("MON-1", 0, local(day3, 12), "Available"),
            status("MON-1", 2, local(day10, 8), "Faulted", "PowerMeterFailure"), status("MON-1", 2, local(day10, 8, 45), "Available"),
        ]  # fmt: skip
        self.events += session_events(start=local(day15, 9), station_id="MON-1", connector_id=2, readings=[9_000, 20_000])
        self.late_seen = local(day15, 12)
        self.events += [make_event("station_boot", at=self.late_seen, station_id="MON-LATE", name="Late Bahnhof",
                                   connector_count=1), status("MON-LATE", 1, self.late_seen, "Available")]  # fmt: skip
        beat = self.late_seen + timedelta(seconds=HEARTBEAT_S)
        while beat <= self.now:
            self.events.append(status("MON-LATE", 0, beat, "Available", heartbeat=True))
            beat += timedelta(seconds=HEARTBEAT_S)
        self.outage_id = f"outage:MON-1:2:{local(day10, 8).isoformat().replace('+00:00', 'Z')}"


def month_minutes(m: Month) -> Decimal:
    return Decimal((m.t1 - m.t0) // timedelta(seconds=1)) / 60


def uptime(total: Decimal, outage: Decimal, excluded: Decimal) -> str:
    return str(((total - (outage - excluded)) * 100 / total).quantize(Decimal("0.001"), ROUND_HALF_UP))


def read_csv(path: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8"))))


def test_a_simulated_month_gives_the_monthly_report_by_hand_idempotent_and_readable_in_a_browser(pipeline, tmp_path):
    """Per-port uptime, outages, causes and sessions match what was sent; rebuilds give the same bytes; no-data says so."""
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: run `make install` as root (apt-get install chromium)"
    m = Month(datetime.now(timezone.utc))
    # beat catching up a whole month at once: the ledger's lookback must reach the month's start.
    # The report reads PostgreSQL only: no event index (a month of daily indices costs half a minute)
    pipeline.settings = pipeline.settings.model_copy(update={
        "timezone": "Europe/Berlin", "max_event_age_s": 100 * 86400.0, "heartbeat_interval_s": float(HEARTBEAT_S),
        "alert_lookback_s": 40 * 86400.0, "sinks": [SinkName.PERSIST]})  # fmt: skip
    pipeline.start_workers((Queue.PERSIST,))
    pipeline.start_bridge()
    pipeline.wait_drained(pipeline.publish(as_messages(m.events)))

    ctx = Context(pipeline.settings)
    try:
        built = do_monthly_report(ctx, m.now)  # what beat's job runs on the first of the month
        html_before = Path(built["html"]).read_bytes()
        again = do_monthly_report(ctx, m.now + timedelta(minutes=5))  # a second tick: nothing rebuilt
        set_cause(ctx.engine, pipeline.settings, m.outage_id, OutageCause.UTILITY_INTERRUPTION, "grid down",
                  by="alice", now=m.now)  # fmt: skip
        forced = do_monthly_report(ctx, m.now, force=True)
        forced_bytes = (Path(forced["html"]).read_bytes(), Path(forced["csv"]).read_bytes())
        same = do_monthly_report(ctx, m.now, force=True)
        # the month before last: nothing at all (the simulated stations boot an hour before the month)
        empty_label = ((m.first - timedelta(days=1)).replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
        empty = do_monthly_report(ctx, m.now, empty_label, force=True)
    finally:
        ctx.close()

    assert built["month"] == m.label and "uptime_pct" in built
    assert again["skipped"] == "already built" and Path(built["html"]).read_bytes() != b""
    assert (Path(same["html"]).read_bytes(), Path(same["csv"]).read_bytes()) == forced_bytes  # same inputs, same bytes
    assert html_before != forced_bytes[0]  # the exclusion changed the page

    # --- per port: the hand-counted station, and every port against `evmonitor uptime` ----------
    rows = {(r["station_id"], int(r["connector_id"])): r for r in read_csv(forced["csv"])}
    total = month_minutes(m)
    mon1, mon2 = rows[("MON-1", 1)], rows[("MON-1", 2)]
    assert (mon1["coverage"], Decimal(mon1["t_total_min"]), Decimal(mon1["t_outage_min"]), Decimal(mon1["t_excluded_min"])) == (
        "full month", total, Decimal(120), Decimal(0))
    assert mon1["uptime_pct"] == uptime(total, Decimal(120), Decimal(0))
    assert (Decimal(mon2["t_outage_min"]), Decimal(mon2["t_excluded_min"])) == (Decimal(105), Decimal(45))
    assert mon2["uptime_pct"] == uptime(total, Decimal(105), Decimal(45))
    assert mon2["outage_minutes_by_cause"] == "unknown 60.000 min (1); utility_interruption 45.000 min (1, excluded)"
    failed_known = pipeline.sql("SELECT count(*) AS n FROM information_schema.columns WHERE table_name = "
                                "'charging_sessions' AND column_name = 'failed'")[0].n == 1  # fmt: skip
    assert (mon2["sessions"], mon2["energy_kwh"], mon2["peak_kw"], mon2["failed_sessions"]) == (
        "1", "20.000", "42.0", "0" if failed_known else "")
    late = rows[("MON-LATE", 1)]
    assert late["coverage"] == "partial month"
    assert datetime.fromisoformat(late["covered_from"]) == m.late_seen
    assert Decimal(late["t_total_min"]) == Decimal((m.t1 - m.late_seen) // timedelta(seconds=1)) / 60

    # the ledger as the report saw it (no refresh at the wall clock)
    shown = CliRunner().invoke(app, ["uptime", "--month", m.label, "--json", "--no-refresh"], env=pipeline.env)
    assert shown.exit_code == 0, shown.output
    ledger = {(r["station_id"], r["connector_id"]): r for r in json.loads(shown.stdout)["ports"]}
    assert set(ledger) == set(rows) and len(rows) >= 10
    figures = ("t_total_min", "t_outage_min", "t_excluded_min", "uptime_pct")
    for key, row in rows.items():
        want = ledger[key]
        assert tuple(Decimal(row[f]) if row[f] else None for f in figures) == tuple(
            None if want[f] is None else Decimal(str(want[f])) for f in figures), key

    sessions = pipeline.sql("SELECT count(*) AS n, sum(energy_delivered_kwh) AS kwh FROM charging_sessions "
                            "WHERE start_time >= :a AND start_time < :b", a=m.t0, b=m.t1)[0]  # fmt: skip
    assert sum(int(r["sessions"]) for r in rows.values()) == sessions.n > 10
    assert sum(Decimal(r["energy_kwh"]) for r in rows.values()) == sessions.kwh
    [recorded] = pipeline.sql("SELECT * FROM reports WHERE kind = 'monthly' AND day = :d", d=m.first)
    assert (recorded.sessions_started, recorded.energy_kwh, Path(recorded.html_path)) == (sessions.n, sessions.kwh,
                                                                                        Path(forced["html"]))  # fmt: skip

    # --- a month with nothing in it says so, in CSV and HTML ---------------------------------
    assert empty["uptime_pct"] is None and empty["coverage"] == "no data"
    [nothing] = read_csv(empty["csv"])
    assert (nothing["month"], nothing["coverage"], nothing["uptime_pct"]) == (empty_label, "no data", "")

    # --- in a browser: the port table and the "no data" wording are there to read ------------
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.goto(Path(forced["html"]).as_uri())
            table = page.locator("#ports + p + table")
            assert table.is_visible()
            row = table.locator("tr", has_text="MON-1 · port 2")
            assert row.is_visible() and uptime(total, Decimal(105), Decimal(45)) in row.inner_text()
            assert "partial month" in table.locator("tr", has_text="MON-LATE").inner_text()
            assert page.locator("img").count() == 3 and all(
                page.locator("img").nth(i).evaluate("i => i.complete && i.naturalWidth > 0") for i in range(3))
            page.screenshot(path=str(tmp_path / "monthly-report.png"), full_page=True)
            page.goto(Path(empty["csv"]).with_suffix(".html").as_uri())
            banner = page.locator(".banner")
            assert banner.is_visible() and banner.inner_text().startswith("No data")
            assert page.locator(".card", has_text="Network uptime").inner_text().splitlines()[1] == "no data"
        finally:
            browser.close()

    # --- on demand, through the command line -------------------------------------------------
    done = CliRunner().invoke(app, ["report", "--month", m.label], env=pipeline.env)
    assert done.exit_code == 0, done.output
    assert done.stdout.split() == [forced["html"], forced["csv"]]
