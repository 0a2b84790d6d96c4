"""Conflicting facts are held, not billed (DESIGN.md invariant 5), through the real pipeline and beat."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from beat.runner import Context, do_conflicts, do_rollups
from evmonitor.contract import TOPIC_BY_TYPE
from tests.factories import encode, make_event, session_events
from tests.integration.test_exact import SEED_SQL

NOW = datetime.now(timezone.utc).replace(microsecond=0)

# The seed README's "total energy delivered today" query, verbatim, as test_exact runs it.
SEED_TOTALS = SEED_SQL[2]


def as_messages(events):
    return [(TOPIC_BY_TYPE[e["event_type"]], e["station_id"].encode(), encode(e)) for e in events]


def test_a_conflicting_pair_is_held_out_of_totals_and_rollups_and_raises_an_alert(pipeline):
    """Disagreeing events, in any order: the session is held, unbilled, out of rollups, and named in an alert."""
    pipeline.start_workers()
    pipeline.start_bridge()
    start = max(NOW - timedelta(minutes=50), NOW.replace(hour=0, minute=0, second=0))  # today, for CURRENT_DATE
    boots = [make_event("station_boot", at=start - timedelta(minutes=5), station_id=s, max_power_kw=22.0)
             for s in ("ST-H", "ST-X")]  # fmt: skip
    good = session_events(start=start, meter_start_wh=1_000, readings=[2_000, 4_000], price=0.5, station_id="ST-H")
    # the same session id from another station: a producer's mistake
    twin = session_events(start=start, meter_start_wh=50_000, readings=[3_000], price=0.5, station_id="ST-H")
    stray = make_event("session_progress", at=start + timedelta(minutes=7), session_id=twin[0]["session_id"],
                       station_id="ST-X", connector_id=1, meter_wh=999_999)  # fmt: skip
    # a reading below its start
    below = session_events(start=start, meter_start_wh=80_000, readings=[2_000], price=0.5, station_id="ST-H",
                           connector_id=2)  # fmt: skip
    low = make_event("session_progress", at=start + timedelta(minutes=3), session_id=below[0]["session_id"],
                     station_id="ST-H", connector_id=2, meter_wh=79_000)  # fmt: skip
    # 60 kWh in 15 minutes on a 22 kW station: physically impossible
    fast = session_events(start=start, meter_start_wh=0, readings=[20_000, 60_000], price=0.5, station_id="ST-X")
    events = [*boots, *good, *twin, stray, *below, low, *fast]
    noisy = events + random.Random(11).choices(events, k=8)
    random.Random(5).shuffle(noisy)
    pipeline.wait_drained(pipeline.publish(as_messages(noisy)))

    rows = {str(r.id): r for r in pipeline.sql("SELECT * FROM charging_sessions")}
    assert rows[twin[0]["session_id"]].held_reason == "station_mismatch"
    assert rows[below[0]["session_id"]].held_reason == "meter_below_start"
    assert rows[good[0]["session_id"]].held_reason is None
    for sid in (twin[0]["session_id"], below[0]["session_id"]):
        assert (rows[sid].energy_delivered_kwh, rows[sid].cost_eur) == (None, None)

    ctx = Context(pipeline.settings)
    try:
        result = do_conflicts(ctx, NOW)
        assert (result["held"], result["alerts_changed"]) == (3, 3)
        assert pipeline.sql("SELECT held_reason FROM charging_sessions WHERE id = :id",
                            id=fast[0]["session_id"])[0].held_reason == "exceeds_max_power"  # fmt: skip
        (totals,) = pipeline.sql(SEED_TOTALS)
        assert (totals.sessions, totals.total_energy_kwh, totals.total_revenue_eur) == (4, Decimal("4.000"),
                                                                                        Decimal("2.00"))  # fmt: skip

        alerts = {str(a.session_id): a for a in pipeline.sql("SELECT * FROM alerts WHERE kind = 'session_conflict'")}
        assert set(alerts) == {twin[0]["session_id"], below[0]["session_id"], fast[0]["session_id"]}
        assert all(a.status == "open" and a.severity == "critical" for a in alerts.values())
        named = alerts[twin[0]["session_id"]]
        assert stray["event_id"] in named.details["events"] and stray["event_id"] in named.message
        assert {e["event_id"] for e in twin} & set(named.details["events"])
        assert set(alerts[below[0]["session_id"]].details["events"]) == {low["event_id"], below[0]["event_id"]}
        assert alerts[fast[0]["session_id"]].info == "exceeds_max_power"
        pipeline.http("POST", "/charging-alerts/_refresh")
        doc = pipeline.http("GET", f"/charging-alerts/_doc/{named.id}")["_source"]
        assert (doc["kind"], doc["session_id"]) == ("session_conflict", twin[0]["session_id"])
        assert stray["event_id"] in doc["message"]

        do_rollups(ctx, NOW)
        (hourly,) = pipeline.sql("SELECT sum(energy_kwh) AS kwh, sum(revenue_eur) AS eur, "
                                 "sum(sessions_started) AS n FROM station_hourly")  # fmt: skip
        assert (hourly.kwh, hourly.eur, hourly.n) == (Decimal("4.000"), Decimal("2.00"), 1)
        daily = pipeline.sql("SELECT energy_kwh, revenue_eur, sessions_started FROM daily_rollups "
                             "WHERE scope = 'network'")  # fmt: skip
        assert sum(d.energy_kwh for d in daily) == Decimal("4.000") and sum(d.sessions_started for d in daily) == 1

        again = do_conflicts(ctx, NOW + timedelta(minutes=1))  # idempotent: nothing changes
        assert (again["limits_joined"], again["alerts_changed"], again["alerts_closed"]) == (0, 0, 0)
    finally:
        ctx.close()
