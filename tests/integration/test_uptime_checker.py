"""The issue's check, end to end: our own events through Kafka, the bridge and the workers, beat's jobs
at an explicit `now`, then the real `evmonitor outages exclude` and `evmonitor uptime --json` as
subprocesses, against figures computed by hand.

Station CHK-1 (2 ports) in EVMON_TIMEZONE=Europe/Berlin (UTC+1 in late November); D1, D2 are the
local days 6 and 5 days before today, D3 the day after D2. Times are local.

    D1 06:00         boot: first seen (T_total counts from here); heartbeats every 30 min until the end
    D1 10:00-11:30   connector 1 Faulted (GroundFailure)                          90 min
    D1 11:00-12:00   connector 0 Unavailable: the whole station                    60 min
                     -> port 1: ONE outage 10:00-12:00 = 120 min; port 2: 11:00-12:00 = 60 min
    D1 14:00-14:20   a session on port 2 that delivers 11 kWh (no outage)
    D2 08:00-08:45   connector 2 Faulted (PowerMeterFailure) 45 min, then excluded: utility_interruption
    D2 14:00-14:05   a session on port 1 that delivers 0 Wh: failed, an outage of port 1      5 min
    D2 23:30-D3 00:30 connector 1 Faulted: 30 min inside the window (local midnight cuts it)
    D3 01:00         beat runs (faults, then outages)

Uptime --from D1 --to D2 (local days, inclusive; T_total from first seen: 18 h + 24 h = 2,520 min):
    port 1  T_outage 120 + 5 + 30 = 155, T_excluded 0   (2520 - 155) / 2520 = 93.849 %
    port 2  T_outage 60 + 45 = 105,      T_excluded 45  (2520 - 60) / 2520  = 97.619 %
    CHK-1   T_total 5040, T_outage 260, T_excluded 45   (5040 - 215) / 5040 = 95.734 %
"""

from __future__ import annotations

import json
import subprocess
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from beat.runner import Context, do_faults, do_outages
from evmonitor.contract import TOPIC_BY_TYPE
from evmonitor.stack.embedded import evmonitor_cmd
from tests.factories import make_event, session_events

BERLIN = ZoneInfo("Europe/Berlin")
STATION = "CHK-1"
TODAY = datetime.now(BERLIN).date()
D1, D2, D3 = TODAY - timedelta(days=6), TODAY - timedelta(days=5), TODAY - timedelta(days=4)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN).astimezone(timezone.utc)


def status(connector: int, when: datetime, state: str, code: str = "NoError", **extra) -> dict:
    return make_event("station_status", at=when, station_id=STATION, connector_id=connector, status=state,
                      error_code=code, **extra)  # fmt: skip


def events() -> list[dict]:
    boot = make_event("station_boot", at=at(D1, 6), station_id=STATION, name="Checker", connector_count=2)
    out = [boot, status(1, at(D1, 6), "Available"), status(2, at(D1, 6), "Available")]
    beat, end = at(D1, 6), at(D3, 0, 45)
    while beat <= end:
        out.append(status(0, beat, "Available", heartbeat=True))
        beat += timedelta(minutes=30)
    out += [
        status(1, at(D1, 10), "Faulted", "GroundFailure"), status(1, at(D1, 11, 30), "Available"),
        status(0, at(D1, 11), "Unavailable"), status(0, at(D1, 12), "Available"),
        *session_events(start=at(D1, 14), station_id=STATION, connector_id=2, readings=[4_000, 11_000]),
        status(2, at(D2, 8), "Faulted", "PowerMeterFailure"), status(2, at(D2, 8, 45), "Available"),
        *session_events(start=at(D2, 14), station_id=STATION, connector_id=1, readings=[]),
        status(1, at(D2, 23, 30), "Faulted", "GroundFailure"), status(1, at(D3, 0, 30), "Available"),
    ]  # fmt: skip
    return out


def cli(env: dict, *args: str) -> str:
    done = subprocess.run(evmonitor_cmd(*args), env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_uptime_json_for_a_made_up_station_matches_the_figures_computed_by_hand(pipeline):
    """Fault + overlapping station-wide outage + one excluded outage: `evmonitor uptime --json` gives the hand figures."""
    pipeline.settings = pipeline.settings.model_copy(update={"timezone": "Europe/Berlin"})
    pipeline.start_workers()
    pipeline.start_bridge()
    sent = events()
    pipeline.wait_drained(pipeline.publish(
        [(TOPIC_BY_TYPE[e["event_type"]], STATION.encode(), json.dumps(e).encode()) for e in sent]))  # fmt: skip
    ctx = Context(pipeline.settings)
    try:
        do_faults(ctx, at(D3, 1))
        do_outages(ctx, at(D3, 1))
    finally:
        ctx.close()

    env = pipeline.env
    assert env["EVMON_TIMEZONE"] == "Europe/Berlin"
    ledger = json.loads(cli(env, "outages", "list", "--station", STATION, "--json"))
    assert sorted((o["connector_id"], datetime.fromisoformat(o["started_at"]), o["minutes"], o["signals"]) for o in ledger) == [
        (1, at(D1, 10), "120.000", ["Faulted", "Unavailable"]),
        (1, at(D2, 14), "5.000", ["failed_session"]),
        (1, at(D2, 23, 30), "60.000", ["Faulted"]),
        (2, at(D1, 11), "60.000", ["Unavailable"]),
        (2, at(D2, 8), "45.000", ["Faulted"]),
    ]
    [excluded] = [o["id"] for o in ledger if datetime.fromisoformat(o["started_at"]) == at(D2, 8)]
    cli(env, "outages", "exclude", excluded, "--cause", "utility_interruption", "--note", "grid down", "--by", "checker")

    shown = json.loads(cli(env, "uptime", "--json", "--from", D1.isoformat(), "--to", D2.isoformat()))
    assert shown["period"]["from"] == D1.isoformat() and shown["period"]["to"] == D2.isoformat()
    assert shown["period"]["timezone"] == "Europe/Berlin"
    ports = {p["connector_id"]: (p["t_total_min"], p["t_outage_min"], p["t_excluded_min"], p["uptime_pct"])
             for p in shown["ports"] if p["station_id"] == STATION}  # fmt: skip
    assert ports == {1: (2520, 155, 0, 93.849), 2: (2520, 105, 45, 97.619)}
    [station] = [s for s in shown["stations"] if s["station_id"] == STATION]
    assert (station["ports"], station["t_total_min"], station["t_outage_min"], station["t_excluded_min"],
            station["uptime_pct"]) == (2, 5040, 260, 45, 95.734)  # fmt: skip
    audit = pipeline.sql("SELECT outage_id, changed_by, after->>'cause' AS cause FROM port_outage_audit")
    assert [tuple(a) for a in audit] == [(excluded, "checker", "utility_interruption")]
