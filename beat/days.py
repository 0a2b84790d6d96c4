"""Local days and UTC hours: moved to `evmonitor.days` (the outage ledger, read by the API, cuts
periods the same way); re-exported here for beat's modules."""

from evmonitor.days import HOUR, day_bounds, days_overlapping, local_day, previous_day, utc_hour

__all__ = ["HOUR", "day_bounds", "days_overlapping", "local_day", "previous_day", "utc_hour"]
