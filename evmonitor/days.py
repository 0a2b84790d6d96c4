"""Local days and UTC hours: the buckets rollups, availability and reports are cut into.

Hours are UTC hours (`date_trunc('hour', ts, 'UTC')` in SQL). Days are local days of the
configured time zone, so a day is 23, 24 or 25 hours long and may start at a half hour (UTC+5:30);
a day is recomputed whenever any UTC hour overlapping it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

__all__ = ["HOUR", "day_bounds", "days_overlapping", "local_day", "previous_day", "utc_hour"]

HOUR = timedelta(hours=1)


def utc_hour(moment: datetime) -> datetime:
    """The start of the UTC hour holding `moment` (aware)."""
    return moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()


def previous_day(moment: datetime, zone: ZoneInfo) -> date:
    """The last local day that is over at `moment`: yesterday, in the zone's calendar."""
    return local_day(moment, zone) - timedelta(days=1)


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of a local day, in UTC."""
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def days_overlapping(hours: Iterable[datetime], zone: ZoneInfo) -> set[date]:
    """Every local day that shares time with one of the UTC hours [h, h + 1 h)."""
    out: set[date] = set()
    for hour in hours:
        out.add(local_day(hour, zone))
        out.add(local_day(hour + HOUR - timedelta(microseconds=1), zone))
    return out
