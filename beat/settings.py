"""The maintenance jobs' knobs, read once from the one `Settings` object.

`MaintenanceSettings.from_settings(settings)` takes each field from `Settings` when it has
one (`EVMON_STALE_AFTER_S`, ...) and the default below otherwise, so beat works before and
after those fields are declared in `evmonitor.config`. Tests build `MaintenanceSettings(...)`
directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["MaintenanceSettings"]

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class MaintenanceSettings:
    # --- stale sessions ---
    stale_after_s: float = 1800.0  # an active session with no event for this long is stale
    # --- faults and availability ---
    heartbeat_interval_s: float = 900.0  # how often stations send a heartbeat
    offline_after_heartbeats: int = 3  # silent this many intervals: offline
    maintenance_fault_threshold: int = 3  # this many faults within the window flag a station
    maintenance_fault_window_s: float = 86400.0
    alert_lookback_s: float = 7 * 86400.0  # how far back late events may still redraw alerts
    alerts_index: str = "charging-alerts"
    stations_index: str = "charging-stations"
    # --- dead letters ---
    deadletters_index: str = "charging-deadletters"
    deadletter_consumer_group: str = "evmonitor-deadletter-indexer"
    deadletter_batch_max: int = 2000  # records per bulk request
    # --- reports ---
    timezone: str = "UTC"  # local days of rollups, availability and reports
    report_time: str = "06:00"  # local time beat builds yesterday's report
    reports_dir: Path = Path(".evmonitor/reports")
    network_name: str = "evmonitor"
    # --- schedule ---
    rollup_interval_s: float = 60.0
    alerts_interval_s: float = 60.0  # stale sessions, faults, offline stations, availability
    deadletter_interval_s: float = 15.0
    batch_marker_retention_s: float = 86400.0  # ingest_batches markers older than this are garbage
    # where Kafka is; the dead-letter topic
    kafka_bootstrap: str = "127.0.0.1:9092"
    deadletter_topic: str = "ev.deadletter"

    def __post_init__(self) -> None:
        ZoneInfo(self.timezone)  # raises for an unknown zone: fail at start, not at 06:00
        if not _CLOCK.match(self.report_time):
            raise ValueError(f"report_time must be HH:MM (24 h), not {self.report_time!r}")
        if self.offline_after_heartbeats < 1 or self.maintenance_fault_threshold < 1:
            raise ValueError("offline_after_heartbeats and maintenance_fault_threshold must be >= 1")

    @classmethod
    def from_settings(cls, settings: Any) -> "MaintenanceSettings":
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = getattr(settings, f.name, None)
            if value is not None:
                values[f.name] = value
        if getattr(settings, "reports_dir", None) is None:
            values["reports_dir"] = Path(getattr(settings, "state_dir", ".evmonitor")) / "reports"
        return cls(**values)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def report_clock(self) -> time:
        hour, minute = self.report_time.split(":")
        return time(int(hour), int(minute))

    @property
    def stale_after(self) -> timedelta:
        return timedelta(seconds=self.stale_after_s)

    @property
    def offline_after(self) -> timedelta:
        return timedelta(seconds=self.heartbeat_interval_s * self.offline_after_heartbeats)

    @property
    def fault_window(self) -> timedelta:
        return timedelta(seconds=self.maintenance_fault_window_s)

    @property
    def lookback(self) -> timedelta:
        return timedelta(seconds=self.alert_lookback_s)
