"""`/api/v1/stations`: the network's stations with their live status."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from evmonitor.api import queries
from evmonitor.api.deps import Clock, Conn, reader
from evmonitor.api.errors import ERROR_RESPONSES, ApiError
from evmonitor.api.models import Page, Station, StationDetail

router = APIRouter(prefix="/stations", tags=["stations"], dependencies=[reader], responses=ERROR_RESPONSES)

Status = Literal["Faulted", "Offline", "Unavailable", "Charging", "Available", "Reserved", "Unknown"]
StationId = Annotated[str, Path(min_length=1, max_length=64)]


@router.get("", response_model=Page[Station])
def list_stations(
    conn: Conn,
    clock: Clock,
    status: Annotated[Status | None, Query(description="board status")] = None,
    operator: Annotated[str | None, Query(max_length=200)] = None,
    city: Annotated[str | None, Query(max_length=200)] = None,
    q: Annotated[str | None, Query(max_length=200, description="free text: id, name, operator, city")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict:
    """Stations by id, filtered by board status, operator, city or free text."""
    try:
        items, nxt = queries.station_list(conn, offline_before=clock.offline_before, status=status, operator=operator,
                                          city=city, q=q, limit=limit, cursor=cursor)  # fmt: skip
    except ValueError as exc:
        raise ApiError(422, "invalid_request", f"cursor: {exc}") from None
    return {"items": items, "next_cursor": nxt}


@router.get("/{station_id}", response_model=StationDetail, responses={404: ERROR_RESPONSES[401] | {"description": "no such station"}})
def get_station(station_id: StationId, conn: Conn, clock: Clock) -> dict:
    """One station: connectors' live status, last seen, open alerts, today's sessions and kWh."""
    found = queries.station_detail(conn, station_id, offline_before=clock.offline_before, day_start=clock.day_start)
    if found is None:
        raise ApiError(404, "not_found", f"no station {station_id!r}")
    return found
