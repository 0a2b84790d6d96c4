"""From raw benchmark results to ratios, per-event costs and target verdicts."""

from __future__ import annotations

import pytest

from bench.headline import cpu_cap_per_s, headline, ours_us_per_event, targets
from bench.profile import parse_collapsed, top_frames
from bench.report import markdown, text_tables


def _run(name, rate, *, sinks=("persist",), batch=500, workers=1, cpu=None, net=None, exact=True):
    return {
        "scenario": name, "sinks": list(sinks), "batch_max_events": batch, "concurrency": workers, "events": 1000,
        "seconds": 1000 / rate, "events_per_s": rate, "produce_s": 1.0, "exact": exact, "detail": "",
        "cpu_us_per_event": cpu or {"bridge": 30.0, "worker-persist": 20.0, "postgres": 40.0, "simulator": 10.0},
        "net_us_per_event": net or {"bridge": 25.0, "worker-persist": 18.0},
        "machine_busy_fraction": 0.9, "background_fraction": 0.1, "peak_rss_mb": {"bridge": 90.0},
    }  # fmt: skip


def _stage(name, per_s, unit="events"):
    return {"name": name, "per_s": per_s, "unit": unit, "items": 1, "seconds": 1.0, "cpu_us_per_item": None, "extra": {}}


@pytest.fixture
def results():
    return {
        "meta": {"cpus": 2, "date": "2026-01-01T00:00:00+00:00", "packages": {}},
        "stages": {s["name"]: s for s in (_stage("kafka_consume", 80_000, "msg"), _stage("celery_batch_task", 30_000),
                                          _stage("postgres_upsert", 10_000), _stage("bulk_index", 2_000, "docs"))},
        "runs": {
            "persist": _run("persist", 8_000),
            "persist_per_event": _run("persist_per_event", 200, batch=1),
            "persist_bad_10": _run("persist_bad_10", 7_600),
            "persist_batch_50": _run("persist_batch_50", 5_000, batch=50),
            "persist_2_workers": _run("persist_2_workers", 9_000, workers=2),
            "index": _run("index", 1_700, sinks=("index",)),
            "index_per_event": _run("index_per_event", 100, sinks=("index",), batch=1),
            "both": _run("both", 1_500, sinks=("persist", "index"),
                         net={"bridge": 30.0, "worker-persist": 20.0, "worker-index": 25.0}),
        },
        "bad_drain": {"runs": {
            "drain_persist_clean": {"exact": True, "events_per_s": 8_000, "events_per_s_after_first_fetch": 10_000},
            "drain_persist_bad_10": {"exact": True, "events_per_s": 7_700, "events_per_s_after_first_fetch": 9_500},
        }},
        "freshness": {"offered_per_s": 1000, "achieved_per_s": 998, "seconds": 30, "poll_s": 0.05,
                      "postgres_ms": {"p50": 200.0, "p99": 600.0}, "search_ms": {"p50": 300.0, "p99": 2500.0},
                      "samples": {"postgres": 10, "search": 10}, "unseen": {"postgres": 0, "search": 0}},
    }  # fmt: skip


def test_ratios_divide_end_to_end_by_the_slowest_stage_of_each_path(results):
    """Persist: 8,000 / postgres 10,000; index: 1,700 / bulk 2,000."""
    head = headline(results)
    assert head["persist_vs_slowest_stage"]["slowest_stage"] == "postgres_upsert"
    assert head["persist_vs_slowest_stage"]["fraction"] == pytest.approx(0.8)
    assert head["index_vs_slowest_stage"]["fraction"] == pytest.approx(0.85)
    assert head["batched_over_per_event"] == {"persist": 40.0, "index": 17.0}
    assert head["two_workers_over_one"]["persist"] == pytest.approx(9_000 / 8_000)
    assert head["two_workers_over_one"]["index"] is None
    assert list(head["batch_size_curve"]) == ["1", "50", "500"]


def test_a_run_that_did_not_reconcile_counts_as_not_measured(results):
    """An inexact run's rate is never used in a ratio."""
    results["runs"]["persist"]["exact"] = False
    assert headline(results)["persist_vs_slowest_stage"]["fraction"] is None


def test_our_cost_sums_bridge_and_workers_only(results):
    """Stores and the simulator are not 'ours'; net subtracts the idle cost."""
    run = results["runs"]["persist"]
    assert ours_us_per_event(run) == 50.0
    assert ours_us_per_event(run, net=True) == 43.0
    assert cpu_cap_per_s(run, 2) == 20_000  # 100 CPU-µs per event in all on 2 cores


def test_targets_say_met_missed_or_not_measured(results):
    """Each target gets a verdict; missed ones say what holds them back."""
    verdicts = {t.name: t for t in targets(results)}
    persist = verdicts["persist path end to end"]
    assert persist.met is False and "postgres_upsert" in persist.why
    assert verdicts["index path vs the search server's bulk ceiling"].met is True
    assert verdicts["our processes together (both sinks)"].met is False
    assert verdicts["batched vs one task per event (persist path)"].met is True
    assert verdicts["p99 produce -> searchable at 1,000 events/s"].met is False
    assert verdicts["bridge and worker memory over the soak"].met is None
    bad = verdicts["persist path with 10% bad input vs clean (records/s)"]  # drains from the first fetch: 9,500 / 10,000
    assert bad.met is True and bad.measured.startswith("95% (backlog drains") and "while producing 95%" in bad.measured
    results["bad_drain"]["runs"]["drain_persist_bad_10"]["events_per_s_after_first_fetch"] = 6_000
    results["runs"]["persist_bad_10"]["events_per_s"] = 6_000  # end to end: 6,000 / 8,000
    bad = {t.name: t for t in targets(results)}["persist path with 10% bad input vs clean (records/s)"]
    assert bad.met is False and bad.measured.startswith("60% (") and "while producing 75%" in bad.measured
    assert "CPU-µs per event" in bad.why
    results["bad_drain"]["runs"]["drain_persist_bad_10"]["exact"] = False  # an inexact drain is not measured
    assert headline(results)["bad_input_over_clean"] is None


def test_reports_render_ratios_before_absolute_figures(results):
    """The markdown summary puts the ratios first, and both renderings hold every run."""
    md = markdown(results)
    assert md.index("## Ratios") < md.index("## Targets") < md.index("## End to end")
    text = text_tables(results)
    assert all(name in md and name in text for name in results["runs"])


def test_profile_summary_counts_inclusive_and_self_samples():
    """A function on every stack is 100% inclusive; self time goes to the innermost frame."""
    stacks = parse_collapsed("main (a.py:1);fold (evmonitor/fold.py:9) 3\nmain (a.py:1);dumps (json/encoder.py:2) 1\n")
    top = dict((name, (inc, own)) for name, inc, own in top_frames(stacks)["by_inclusive"])
    assert top["main (a.py)"] == (100.0, 0.0)
    assert top["fold (evmonitor/fold.py)"] == (75.0, 75.0)
