"""The demo's uptime rows: equal ports are exact, any difference (even one microsecond) is a mismatch."""

from __future__ import annotations

from decimal import Decimal

from evmonitor.simulator.downtime import Downtime, PortTruth
from evmonitor.stack.reconcile_uptime import LedgerPort, compare_uptime

HOUR_US = 3600 * 10**6
TRUTH = Downtime(judged_at_us=10 * HOUR_US, offline_after_s=2700, ports=(
    PortTruth("S1", 1, 0, 10 * HOUR_US, ((HOUR_US, 2 * HOUR_US),)),
    PortTruth("S1", 2, 0, 10 * HOUR_US, ()),
    PortTruth("S2", 1, 0, 10 * HOUR_US, ((9 * HOUR_US, None),)),
))  # fmt: skip


def ledger(truth: Downtime) -> dict[str, LedgerPort]:
    return {p.key: LedgerPort(p.outages, p.total_us, p.outage_us, p.uptime_pct) for p in truth.ports}


def test_a_ledger_equal_to_the_truth_gives_exact_summary_rows_only():
    """Five summary rows, all matching; no per-port row unless asked for."""
    rows = compare_uptime(TRUTH, ledger(TRUTH))
    assert [r.metric for r in rows] == ["ports (uptime)", "ports exact: outages, minutes, uptime %", "port outages",
                                        "outage minutes (all ports)", "uptime % (all ports)"]  # fmt: skip
    assert all(r.ok for r in rows)
    assert rows[3].expected == Decimal("120.000") and rows[4].expected == Decimal("93.333")  # 2 h out of 30 h
    assert len(compare_uptime(TRUTH, ledger(TRUTH), every_port=True)) == 5 + 3


def test_an_interval_one_microsecond_off_is_a_mismatch_even_when_the_minutes_round_alike():
    """The port's row says so, and `ports exact` counts one fewer."""
    seen = ledger(TRUTH)
    port = seen["S1/1"]
    seen["S1/1"] = LedgerPort(((HOUR_US + 1, 2 * HOUR_US),), port.total_us, port.outage_us - 1, port.uptime_pct)
    rows = {r.metric: r for r in compare_uptime(TRUTH, seen)}
    assert not rows["ports exact: outages, minutes, uptime %"].ok
    assert rows["ports exact: outages, minutes, uptime %"].postgres == 2
    assert not rows["  S1/1 outage min / uptime %"].ok


def test_a_missing_port_and_a_port_the_truth_does_not_have_are_mismatches():
    """A port absent from the ledger, or present only there, fails the table."""
    seen = ledger(TRUTH)
    del seen["S1/2"]
    seen["S9/1"] = LedgerPort((), 10 * HOUR_US, 0, Decimal("100.000"))
    rows = {r.metric: r for r in compare_uptime(TRUTH, seen)}
    assert rows["  S1/2 outage min / uptime %"].postgres == "missing" and not rows["  S1/2 outage min / uptime %"].ok
    assert not rows["  S9/1 (not in the truth)"].ok
