"""The uptime_below_target alert of a port (beat.alerts.uptime_alerts): pure."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from beat.alerts import Kind, describe, uptime_alerts

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=timezone.utc)
TARGET = Decimal("97")


def test_a_port_below_target_opens_one_alert_and_back_at_target_closes_it():
    """Below target opens an alert at `now`; still below changes nothing; at target closes it."""
    [opened] = uptime_alerts("S1", 2, Decimal("96.5"), target_pct=TARGET, window_days=365, open_alert=None, now=NOW)
    assert (opened.kind, opened.id, opened.until) == (Kind.UPTIME, "uptime:S1:2:2026-11-03T12:00:00Z", None)
    assert opened.details == {"uptime_pct": "96.5", "target_pct": "97", "window_days": 365}
    later = NOW + timedelta(minutes=5)
    assert uptime_alerts("S1", 2, Decimal("96.0"), target_pct=TARGET, window_days=365, open_alert=opened, now=later) == []
    [closed] = uptime_alerts("S1", 2, Decimal("97.000"), target_pct=TARGET, window_days=365, open_alert=opened, now=later)
    assert closed.id == opened.id and closed.until == later
    assert "connector 2 uptime 96.5 % over the last 365 days, below the target 97 %" in describe(opened, "Depot")


def test_nothing_measured_or_at_target_raises_nothing():
    """A port with no measured time, or at target, has no alert."""
    assert uptime_alerts("S1", 1, None, target_pct=TARGET, window_days=365, open_alert=None, now=NOW) == []
    assert uptime_alerts("S1", 1, Decimal("97"), target_pct=TARGET, window_days=365, open_alert=None, now=NOW) == []
