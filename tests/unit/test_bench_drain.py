"""Issue 15's figures from raw drain results: ratios against same-run ceilings, the five targets."""

from __future__ import annotations

import pytest

from bench.drain import process_names
from bench.drain_targets import ceiling, ours_us_per_event, ratios, steady_us_per_event, targets
from bench.report import markdown, text_tables


def _drain(name, rate, *, workers=2, bridges=1, sinks=("persist",), cpu=None, startup_cpu_s=0.5, exact=True):
    events = 100_000
    return {
        "scenario": name, "sinks": list(sinks), "workers": workers, "bridges": bridges, "partitions": 24,
        "events": events, "seconds": events / rate, "events_per_s": rate, "produce_s": 5.0, "exact": exact,
        "detail": "", "startup_s": {"first_fetch": 2.0, "first_commit": 2.5}, "startup_share": 0.1,
        "cpu_us_per_event": cpu or {"bridge": 45.0, "worker-persist": 30.0, "postgres": 50.0, "kafka": 8.0,
                                    "redis": 2.0, "elasticsearch": 0.0, "harness": 3.0},
        "events_per_s_after_first_fetch": rate * 1.25, "bridge_startup_cpu_s": {"bridge": startup_cpu_s}, "machine_busy_fraction": 0.95, "background_fraction": 0.02,
        "peak_rss_mb": {"bridge": 100.0},
    }  # fmt: skip


def _stage(name, per_s, unit="events", cpu=None):
    return {"name": name, "per_s": per_s, "unit": unit, "items": 1, "seconds": 1.0, "cpu_us_per_item": cpu, "extra": {}}


@pytest.fixture
def results():
    return {
        "meta": {"cpus": 2, "date": "2026-01-01T00:00:00+00:00", "packages": {}},
        "stages": {s["name"]: s for s in (_stage("kafka_consume", 100_000, "msg"), _stage("postgres_upsert", 12_500),
                                          _stage("postgres_upsert_2_connections", 20_000),
                                          _stage("bridge_validate", 50_000, cpu=20.0))},
        "drain": {"runs": {
            "drain_persist": _drain("drain_persist", 10_000),
            "drain_both": _drain("drain_both", 1_500, sinks=("persist", "index")),
            "drain_persist_1_worker": _drain("drain_persist_1_worker", 10_000 / 1.8, workers=1),
            "drain_persist_2_bridges": _drain("drain_persist_2_bridges", 11_000, bridges=2),
        }, "ceilings": {}, "workloads": {"drain_persist": "persist"}},
        "freshness_persist": {"offered_per_s": 5000, "achieved_per_s": 4990, "seconds": 30, "poll_s": 0.05,
                              "postgres_ms": {"p50": 300.0, "p99": 700.0, "first_third_p50": 290.0,
                                              "last_third_p50": 310.0},
                              "samples": {"postgres": 1000}, "unseen": {"postgres": 0}, "sinks": ["persist"],
                              "cpu_us_per_event": {"bridge": 60.0, "postgres": 70.0, "simulator": 80.0}},
    }  # fmt: skip


def test_ratios_divide_the_drain_by_the_same_runs_ceilings(results):
    """Drain 10,000/s over PostgreSQL 12,500/s and Kafka 100,000/s; the 2-process drain over the
    1-process one, 2 bridges over 1."""
    r = ratios(results)
    assert r["drain_persist_over_postgres_ceiling"]["value"] == pytest.approx(0.8)
    assert r["drain_persist_over_postgres_ceiling"]["ceiling_from"] == "stages"
    assert r["drain_persist_over_kafka_consume"]["value"] == pytest.approx(0.1)
    assert r["drain_persist_over_postgres_2_connections"]["value"] == pytest.approx(0.5)
    assert r["drain_2_workers_over_1"]["value"] == pytest.approx(1.8)
    assert r["drain_2_bridges_over_1"]["value"] == pytest.approx(1.1)
    assert r["drain_persist_over_postgres_ceiling"]["after_startup"] == pytest.approx(1.0)  # 12,500 from the first fetch
    assert r["drain_2_workers_over_1"]["after_startup"] == pytest.approx(1.8)
    assert r["ours_cpu_us_per_event_over_target"]["numerator"] == 70.0  # bridge 45 - start-up 5 + worker 30
    assert r["ours_cpu_us_per_event_over_target"]["with_startup"] == 75.0


def test_the_drain_sections_own_ceilings_come_first(results):
    """The drain's ceilings (its workload, its batches) are the denominator when measured; the
    `stages` section's (another workload) only without them."""
    results["drain"]["ceilings"] = {"postgres_upsert": _stage("postgres_upsert", 20_000)}
    assert ceiling(results, "postgres_upsert") == (20_000, "drain")
    assert ratios(results)["drain_persist_over_postgres_ceiling"]["value"] == pytest.approx(0.5)
    del results["stages"]
    assert ceiling(results, "postgres_upsert") == (20_000, "drain")
    results["drain"]["ceilings"] = {}
    assert ceiling(results, "postgres_upsert") == (None, "-")


def test_an_inexact_drain_has_no_rate_in_any_ratio(results):
    """A drain that did not reconcile exactly is not measured."""
    results["drain"]["runs"]["drain_persist"]["exact"] = False
    r = ratios(results)
    assert r["drain_persist_over_postgres_ceiling"]["value"] is None
    assert r["drain_2_workers_over_1"]["value"] is None
    assert {t["name"]: t["met"] for t in targets(results)}["backlog drain, persist sink"] is None


def test_the_bridges_start_up_cpu_is_taken_out_of_its_per_event_cost(results):
    """0.5 CPU-s of start-up over 100,000 events is 5 µs per event; the gross figure keeps it."""
    run = results["drain"]["runs"]["drain_persist"]
    assert steady_us_per_event(run)["bridge"] == 40.0
    assert ours_us_per_event(run) == 70.0
    assert ours_us_per_event(run, steady=False) == 75.0
    two = _drain("two", 1000, cpu={"bridge": 20.0, "bridge-2": 21.0, "worker-persist": 9.0, "worker-persist-2": 8.0,
                                   "postgres": 99.0}, startup_cpu_s=0.0)  # fmt: skip
    assert ours_us_per_event(two) == 58.0
    two["bridge_startup_cpu_s"] = {"bridge": 0.1, "bridge-2": 0.2}  # 1 and 2 µs per event of 100,000
    assert steady_us_per_event(two)["bridge-2"] == 19.0 and ours_us_per_event(two) == 55.0


def test_targets_give_goal_measured_verdict_and_what_holds_a_miss_back(results):
    """Missed targets name stages with their µs, largest first; met ones name none."""
    found = {t["name"]: t for t in targets(results)}
    assert len(found) == 5
    drain = found["backlog drain, persist sink"]
    assert drain["met"] is False and drain["value"] == 10_000
    startup, *cpu = drain["held_back_by"]
    assert startup["seconds"] == 2.0 and startup["wall_us_per_event"] == 20.0 and startup["share"] == 0.2
    assert [h["stage"] for h in cpu][:3] == ["postgres", "bridge", "worker-persist"]
    assert cpu[1]["us_per_event"] == 40.0
    assert "harness" not in {h["stage"] for h in drain["held_back_by"]}
    share = found["backlog drain vs PostgreSQL's ceiling for the same writes"]
    assert share["met"] is True and share["held_back_by"] == []
    ours = found["our processes (bridge + persist worker)"]
    assert ours["met"] is False and ours["value"] == 70.0
    assert [h["stage"] for h in ours["held_back_by"]] == ["bridge", "worker-persist"]
    assert "bridge_validate 20.0" in ours["why"]
    fresh = found["p99 produce -> PostgreSQL at 5,000 events/s offered, persist sink"]
    assert fresh["met"] is True and fresh["value"] == 700.0
    assert found["memory flat over a 10-minute soak"]["met"] is None


def test_freshness_below_the_offered_rate_or_slow_misses(results):
    """A p99 of 1 s or more, or a run offered less than 5,000/s, does not meet the target."""
    results["freshness_persist"]["postgres_ms"]["p99"] = 1500.0
    fresh = [t for t in targets(results) if t["name"].startswith("p99")][0]
    assert fresh["met"] is False and fresh["held_back_by"][0] == {"stage": "postgres", "us_per_event": 70.0}
    results["freshness_persist"]["postgres_ms"]["p99"] = 500.0
    results["freshness_persist"]["offered_per_s"] = 1000
    assert [t for t in targets(results) if t["name"].startswith("p99")][0]["met"] is False


def test_a_soak_must_be_flat_and_ten_minutes_long(results):
    """Flat for 10 minutes meets; shorter is a miss that says so; growth names the process."""
    memory = {"bridge": {"growth_mb": 0.2, "flat": True}, "worker-persist": {"growth_mb": 1.0, "flat": True},
              "kafka": {"growth_mb": 90.0, "flat": None}}  # fmt: skip
    results["soak"] = {"minutes": 10.3, "rate_per_s": 2000, "sinks": ["persist"], "memory": memory}
    soak = lambda: [t for t in targets(results) if t["name"].startswith("memory")][0]  # noqa: E731
    assert soak()["met"] is True
    results["soak"]["minutes"] = 3.0
    assert soak()["met"] is False and "3.0 min" in soak()["why"]
    results["soak"]["minutes"] = 10.3
    memory["worker-persist"] = {"growth_mb": 40.0, "flat": False}
    assert soak()["held_back_by"] == [{"stage": "worker-persist", "growth_mb": 40.0}]


def test_second_processes_are_named_apart_from_the_first():
    """The first bridge keeps its plain name, so its log and CPU line up with the other sections."""
    assert process_names("bridge", 2) == ["bridge", "bridge-2"]
    assert process_names("worker-persist", 1) == ["worker-persist"]


def test_reports_put_issue_15_first(results):
    """Both renderings lead with the drain's ratios and targets and list every drain run."""
    md = markdown(results)
    assert md.index("## Issue 15: backlog drain, ratios") < md.index("## Issue 15: targets") < md.index("## Backlog drain")
    text = text_tables(results)
    assert all(name in md and name in text for name in results["drain"]["runs"])
    assert "80%" in md and "MISSED" in md


def test_the_headline_drain_runs_what_up_runs():
    """drain_persist is the deployment `evmonitor up` starts: as many persist processes as its default."""
    from bench.drain import DRAIN_SCENARIOS
    from evmonitor.config import Settings

    headline = {s.name: s for s in DRAIN_SCENARIOS}
    assert headline["drain_persist"].workers == Settings.model_fields["persist_processes"].default
    assert headline["drain_persist_1_worker"].workers == 1
