"""Beat's schedule and the maintenance settings it is built from."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from celery import Celery
from celery.schedules import crontab
from pydantic import ValidationError

from beat.schedule import INTERVAL_JOBS, beat_schedule, configure
from evmonitor.config import Settings


def test_every_job_has_an_explicit_maintenance_name_and_the_report_runs_at_report_time():
    """Interval jobs run every configured interval; the reports are crontabs at report_time (monthly: on the 1st)."""
    schedule = beat_schedule(Settings(_env_file=None, rollup_interval_s=30, alerts_interval_s=45, report_time="06:30"))
    assert {e["task"] for e in schedule.values()} == {
        "evmonitor.maintenance.hold_conflicts",
        "evmonitor.maintenance.rollup_hours",
        "evmonitor.maintenance.mark_stale_sessions",
        "evmonitor.maintenance.track_faults",
        "evmonitor.maintenance.index_stations",
        "evmonitor.maintenance.index_deadletters",
        "evmonitor.maintenance.prune_batch_markers",
        "evmonitor.maintenance.apply_retention",
        "evmonitor.maintenance.track_outages",
        "evmonitor.maintenance.deliver_notifications",
        "evmonitor.maintenance.daily_report",
        "evmonitor.maintenance.monthly_report",
    }
    assert schedule["rollups"]["schedule"] == timedelta(seconds=30)
    assert schedule["faults"]["schedule"] == timedelta(seconds=45)
    assert schedule["rollups"]["options"] == {"queue": "maintenance", "expires": 30.0}
    assert schedule["daily-report"]["schedule"] == crontab(minute=30, hour=6)
    assert schedule["monthly-report"]["schedule"] == crontab(minute=30, hour=6, day_of_month=1)
    assert all(e["options"]["queue"] == "maintenance" for e in schedule.values())


def test_configure_installs_the_schedule_on_the_app():
    """configure() sets beat_schedule from the Settings object."""
    app = Celery("test-beat-schedule")
    configure(app, Settings(_env_file=None))
    assert set(app.conf.beat_schedule) == {*INTERVAL_JOBS, "daily-report", "monthly-report"}


def test_derived_maintenance_values_follow_the_fields():
    """Zone, report clock, windows and the reports folder are derived from Settings' own fields."""
    settings = Settings(_env_file=None, timezone="Europe/Berlin", state_dir=Path("/tmp/evm-state"),
                        report_time="6:05", heartbeat_interval_s=60, offline_after_heartbeats=3)  # fmt: skip
    assert str(settings.zone) == "Europe/Berlin"
    assert (settings.report_clock.hour, settings.report_clock.minute) == (6, 5)
    assert settings.offline_after == timedelta(minutes=3)
    assert settings.stale_after == timedelta(seconds=1800)
    assert settings.reports_path == Path("/tmp/evm-state/reports")
    assert Settings(_env_file=None, reports_dir=Path("/srv/reports")).reports_path == Path("/srv/reports")


@pytest.mark.parametrize("bad", [{"report_time": "6am"}, {"report_time": "24:00"}, {"timezone": "Mars/Olympus"},
                                 {"offline_after_heartbeats": 0}, {"retention_events_days": 3}])  # fmt: skip
def test_maintenance_settings_refuse_nonsense_at_start(bad):
    """A bad report time, zone or threshold fails when settings are read, not at 06:00."""
    with pytest.raises(ValidationError):
        Settings(_env_file=None, **bad)


def test_only_our_daily_event_indices_past_the_cutoff_expire():
    """Retention picks `<prefix>-YYYY.MM.DD` before the cut-off day, never other or malformed names."""
    from datetime import date

    from beat.retention import expired_event_indices

    names = ["charging-events-2026.08.31", "charging-events-2026.09.01", "charging-events-2026.11.30",
             "charging-events-2026.02.30", "charging-events-extra", "charging-alerts", "other-2020.01.01"]  # fmt: skip
    assert expired_event_indices(names, "charging-events", date(2026, 9, 1)) == ["charging-events-2026.08.31"]
