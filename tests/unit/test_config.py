"""Settings reach child processes unchanged."""

from __future__ import annotations

from pathlib import Path

from evmonitor.config import Settings
from evmonitor.stack.embedded import child_env


def test_every_setting_survives_the_trip_through_a_child_environment(monkeypatch):
    """child_env() output, read back by Settings(), gives the same values (lists and paths too)."""
    original = Settings(_env_file=None, sinks=["persist"], state_dir=Path("/tmp/x y"), batch_max_events=7,
                        flower_password="s3cret", max_event_age_s=12.5)  # fmt: skip
    for name, value in child_env(original).items():
        if name.startswith("EVMON_"):
            monkeypatch.setenv(name, value)
    assert Settings(_env_file=None) == original
