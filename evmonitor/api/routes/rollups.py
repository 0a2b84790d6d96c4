"""`/api/v1/rollups`: hourly per station or network, daily per network, operator, city or station."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from evmonitor.api import queries
from evmonitor.api.deps import Clock, Conn, IsoDate, Rfc3339, earlier, reader, utc
from evmonitor.api.errors import ERROR_RESPONSES
from evmonitor.api.models import DailyRollup, HourlyRollup

router = APIRouter(prefix="/rollups", tags=["rollups"], dependencies=[reader], responses=ERROR_RESPONSES)


@router.get("/hourly", response_model=list[HourlyRollup])
def hourly(
    conn: Conn,
    clock: Clock,
    station_id: Annotated[str | None, Query(max_length=64, description="omit for the whole network")] = None,
    since: Annotated[Rfc3339 | None, Query(description="default: 24 h ago")] = None,
    until: Annotated[Rfc3339 | None, Query(description="default: now")] = None,
) -> list[dict]:
    """Sessions, kWh, EUR and utilization per UTC hour in [since, until)."""
    until = utc("until", until) or clock.now
    since = utc("since", since)
    since = since or earlier(until, timedelta(hours=24))
    return queries.hourly_rollups(conn, station_id=station_id, since=since, until=until)


@router.get("/daily", response_model=list[DailyRollup])
def daily(
    conn: Conn,
    clock: Clock,
    scope: Literal["network", "operator", "city", "station"] = "network",
    key: Annotated[str | None, Query(max_length=200, description="operator, city or station id; omit for all")] = None,
    since: Annotated[IsoDate | None, Query(description="first local day, default: 30 days ago")] = None,
    until: Annotated[IsoDate | None, Query(description="day after the last, default: tomorrow")] = None,
) -> list[dict]:
    """Daily totals and utilization (local days of EVMON_TIMEZONE) in [since, until)."""
    until = until or clock.day_start.date() + timedelta(days=1)
    since = since or earlier(until, timedelta(days=30))
    return queries.daily_rollups(conn, scope=scope, key=key, since=since, until=until)
