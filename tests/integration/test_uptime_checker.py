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

from beat.alerts import iso
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


SILENT = "HOLE-1"


def heartbeats(start: datetime, end: datetime, *, skip: tuple[datetime, datetime] | None = None) -> list[dict]:
    """SILENT's heartbeats every 5 min from `start` to `end`, none strictly inside `skip`."""
    out, beat = [], start
    while beat <= end:
        if skip is None or not skip[0] < beat < skip[1]:
            out.append(make_event("station_status", at=beat, station_id=SILENT, connector_id=0, status="Available",
                                  error_code="NoError", heartbeat=True))  # fmt: skip
        beat += timedelta(minutes=5)
    return out


def test_a_past_heartbeat_silence_is_an_outage_of_every_port_and_filling_it_late_removes_it(pipeline):
    """Backdated heartbeats with a 60-min hole, judged after it: one closed offline episode, an outage of
    both ports; the missing heartbeats published late withdraw it on the next run."""
    pipeline.settings = pipeline.settings.model_copy(update={"timezone": "Europe/Berlin"})
    pipeline.start_workers()
    pipeline.start_bridge()
    day = TODAY - timedelta(days=3)
    hole = (at(day, 8), at(day, 9))  # heard at 08:00, then next at 09:00: 60 min > offline_after (45 min)
    end = at(day + timedelta(days=1), 0, 5)  # heard until after the day, so the day's only silence is the hole
    now = end + timedelta(minutes=5)

    def publish(sent: list[dict]) -> None:
        pipeline.wait_drained(pipeline.publish(
            [(TOPIC_BY_TYPE[e["event_type"]], SILENT.encode(), json.dumps(e).encode()) for e in sent]))  # fmt: skip

    def run() -> dict:
        ctx = Context(pipeline.settings)
        try:
            faults = do_faults(ctx, now)
            do_outages(ctx, now)
        finally:
            ctx.close()
        return faults

    boot = make_event("station_boot", at=at(day, 6), station_id=SILENT, name="Silent", connector_count=2)
    publish([boot, *(make_event("station_status", at=at(day, 6), station_id=SILENT, connector_id=c, status="Available",
                                error_code="NoError") for c in (1, 2)),
             *heartbeats(at(day, 6), end, skip=hole)])  # fmt: skip
    run()
    alerts = pipeline.sql("SELECT id, since, until, status FROM alerts WHERE kind = 'station_offline' "
                          "AND station_id = :s AND status <> 'superseded'", s=SILENT)  # fmt: skip
    assert [(a.since, a.until, a.status) for a in alerts] == [(hole[0], hole[1], "closed")]
    assert alerts[0].id == f"offline:{SILENT}:{iso(hole[0])}"
    assert run()["alerts_changed"] == {}  # a rerun changes nothing
    env = pipeline.env
    ledger = json.loads(cli(env, "outages", "list", "--station", SILENT, "--json"))
    assert sorted((o["connector_id"], datetime.fromisoformat(o["started_at"]), o["minutes"], o["signals"])
                  for o in ledger) == [(c, hole[0], "60.000", ["station_offline"]) for c in (1, 2)]  # fmt: skip

    def uptime() -> dict[int, tuple]:
        shown = json.loads(cli(env, "uptime", "--json", "--from", day.isoformat(), "--to", day.isoformat()))
        return {p["connector_id"]: (p["t_total_min"], p["t_outage_min"], p["t_excluded_min"], p["uptime_pct"])
                for p in shown["ports"] if p["station_id"] == SILENT}  # fmt: skip

    # first seen 06:00 local: 18 h = 1,080 min to the end of the day; (1080 - 60) / 1080 = 94.444 %
    assert uptime() == {1: (1080, 60, 0, 94.444), 2: (1080, 60, 0, 94.444)}

    publish(heartbeats(hole[0] + timedelta(minutes=5), hole[1] - timedelta(minutes=5)))  # the hole, filled late
    run()
    assert pipeline.sql("SELECT id FROM alerts WHERE kind = 'station_offline' AND station_id = :s "
                        "AND status <> 'superseded'", s=SILENT) == []  # fmt: skip
    assert json.loads(cli(env, "outages", "list", "--station", SILENT, "--json")) == []
    assert uptime() == {1: (1080, 0, 0, 100.0), 2: (1080, 0, 0, 100.0)}
    # one notification when the past episode was found (closed), one when it was withdrawn: no open/close spam
    outbox = pipeline.sql("SELECT event FROM alert_outbox WHERE alert_id = :id ORDER BY id", id=alerts[0].id)
    assert [o.event for o in outbox] == ["closed", "withdrawn"]
