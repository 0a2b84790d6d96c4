"""Settings: read as people write them, refused in one clear line, unchanged in child processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from evmonitor.config import Settings, load_settings
from evmonitor.errors import ConfigError
from evmonitor.stack.embedded import child_env


def test_every_setting_survives_the_trip_through_a_child_environment(monkeypatch):
    """child_env() output, read back by Settings(), gives the same values (lists and paths too)."""
    original = Settings(_env_file=None, sinks=["persist"], state_dir=Path("/tmp/x y"), batch_max_events=7,
                        flower_password="s3cret", max_event_age_s=12.5)  # fmt: skip
    for name, value in child_env(original).items():
        if name.startswith("EVMON_"):
            monkeypatch.setenv(name, value)
    assert Settings(_env_file=None) == original


def test_list_settings_read_the_way_people_write_them(monkeypatch):
    """EVMON_SINKS=persist, =persist,index and the JSON form all give the same list."""
    for raw, expected in [("persist", ["persist"]), ("persist, index", ["persist", "index"]),
                          ('["index"]', ["index"]), ("index,persist", ["index", "persist"])]:  # fmt: skip
        monkeypatch.setenv("EVMON_SINKS", raw)
        assert Settings(_env_file=None).sinks == expected


def test_a_bad_setting_is_one_line_naming_the_variable(monkeypatch):
    """A value the setting does not accept gives a ConfigError naming EVMON_<NAME> and what it accepts."""
    monkeypatch.setenv("EVMON_SINKS", "persist,disk")
    monkeypatch.setenv("EVMON_BATCH_MAX_EVENTS", "-5")
    with pytest.raises(ConfigError) as info:
        load_settings(_env_file=None)
    message = str(info.value)
    assert "\n" not in message
    assert "EVMON_SINKS" in message and "'persist' or 'index'" in message
    assert "EVMON_BATCH_MAX_EVENTS='-5'" in message and "greater than or equal to 1" in message


def test_excluded_outage_causes_are_written_as_people_write_them():
    """EVMON_UPTIME_EXCLUDED_CAUSES takes a comma-separated list (or JSON); default: the six NEVI exclusions."""
    from evmonitor.names import DEFAULT_EXCLUDED_CAUSES, OutageCause

    assert Settings(_env_file=None).uptime_excluded_causes == list(DEFAULT_EXCLUDED_CAUSES)
    assert OutageCause.EQUIPMENT_FAILURE not in DEFAULT_EXCLUDED_CAUSES and len(DEFAULT_EXCLUDED_CAUSES) == 6
    chosen = Settings(_env_file=None, uptime_excluded_causes="vandalism, utility_interruption").uptime_excluded_causes
    assert chosen == [OutageCause.VANDALISM, OutageCause.UTILITY_INTERRUPTION]
    assert Settings(_env_file=None, uptime_excluded_causes="").uptime_excluded_causes == []
    with pytest.raises(ValidationError):
        Settings(_env_file=None, uptime_excluded_causes="bad_luck")
