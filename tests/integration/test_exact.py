"""Invariants 2-4 on real services: a simulated day with chaos reconciles exactly, and the
user's own README examples (seed.md) run verbatim against the result."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from evmonitor.stack.reconcile import compare, observe
from evmonitor.stack.simulate import run_drain

# The user's README (shared/seed.md), copied verbatim.
SEED_SQL = [
    "SELECT * FROM charging_stations;",
    "SELECT * FROM charging_sessions ORDER BY start_time DESC LIMIT 10;",
    """SELECT 
    DATE(start_time) as date,
    COUNT(*) as sessions,
    SUM(energy_delivered_kwh) as total_energy_kwh,
    SUM(cost_eur) as total_revenue_eur
FROM charging_sessions
WHERE DATE(start_time) = CURRENT_DATE
GROUP BY DATE(start_time);""",
    """SELECT 
    s.name,
    COUNT(cs.id) as total_sessions,
    AVG(cs.energy_delivered_kwh) as avg_energy_kwh
FROM charging_stations s
LEFT JOIN charging_sessions cs ON s.id = cs.station_id
GROUP BY s.name;""",
]
SEED_ES_AGG = {"size": 0, "aggs": {"event_types": {"terms": {"field": "event_type"}}}}


@pytest.fixture
def simulated_day(pipeline):
    pipeline.start_workers()
    pipeline.start_bridge()
    now = datetime.now(timezone.utc)
    truth, sent = run_drain(pipeline.settings, stations=8, sessions=120, seed=3, bad_ratio=0.05, duplicate_ratio=0.05,
                            reorder=True, now=now, say=lambda _: None)  # fmt: skip
    pipeline.wait_drained(sent.targets())
    return pipeline, truth, sent


def test_simulated_day_with_duplicates_reordering_and_bad_input_reconciles_exactly(simulated_day):
    """Sessions, kWh, EUR, documents and dead letters by reason all equal the ground truth."""
    pipeline, truth, sent = simulated_day
    assert truth.duplicates > 0 and truth.bad_events > 0
    rows = compare(truth, observe(pipeline.settings, truth, sent))
    assert [r for r in rows if not r.ok] == []
    assert {r.metric.strip() for r in rows} >= {"sessions", "energy kWh", "revenue EUR", "documents (valid events)"}


def test_seed_readme_sql_runs_verbatim_and_answers_sensibly(simulated_day):
    """The four SQL examples of the user's README run unchanged and agree with the truth."""
    pipeline, truth, _ = simulated_day
    stations, recent, today, utilization = (pipeline.sql(q) for q in SEED_SQL)
    assert len(stations) == truth.stations
    assert len(recent) == 10 and recent[0].start_time >= recent[-1].start_time
    # the seed's "today" query must agree with a direct count on the server's own CURRENT_DATE
    today_sessions = sum(r.sessions for r in today)
    per_day = pipeline.sql("SELECT count(*) AS n FROM charging_sessions WHERE DATE(start_time) = CURRENT_DATE")[0].n
    assert today_sessions == per_day > 0
    assert sum(r.total_sessions for r in utilization) == truth.sessions
    assert all(r.avg_energy_kwh is None or r.avg_energy_kwh >= 0 for r in utilization)


def test_seed_readme_elasticsearch_requests_run_verbatim(simulated_day):
    """`charging-events/_search` and the event_type terms aggregation answer with our events."""
    pipeline, truth, _ = simulated_day
    pipeline.search().refresh()
    hits = pipeline.http("GET", "/charging-events/_search?pretty")
    assert hits["hits"]["hits"] and "event_type" in hits["hits"]["hits"][0]["_source"]
    aggs = pipeline.http("GET", "/charging-events/_search?pretty", SEED_ES_AGG)
    buckets = {b["key"]: b["doc_count"] for b in aggs["aggregations"]["event_types"]["buckets"]}
    assert sum(buckets.values()) == truth.valid_events
    assert buckets["session_started"] == buckets["session_completed"] == truth.sessions
    assert buckets["station_boot"] == truth.stations
