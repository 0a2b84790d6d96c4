"""`/api/v1/alerts`: open and recent alerts; acknowledge and resolve need scope `operate`."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from evmonitor.api import queries
from evmonitor.api.deps import Conn, Operator, reader
from evmonitor.api.errors import ERROR_RESPONSES, ApiError, ErrorBody
from evmonitor.api.models import Alert, Page

router = APIRouter(prefix="/alerts", tags=["alerts"], dependencies=[reader], responses=ERROR_RESPONSES)

AlertId = Annotated[str, Path(min_length=1, max_length=300)]
NOT_FOUND = {404: {"model": ErrorBody, "description": "no such alert"}}


@router.get("", response_model=Page[Alert])
def list_alerts(
    conn: Conn,
    status: Literal["open", "closed"] | None = None,
    station_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict:
    """Alerts newest first: `status=open` for what needs attention now, none for the recent history."""
    try:
        items, nxt = queries.alert_list(conn, status=status, station_id=station_id, limit=limit, cursor=cursor)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", f"cursor: {exc}") from None
    return {"items": items, "next_cursor": nxt}


@router.post("/{alert_id}/acknowledge", response_model=Alert, responses=NOT_FOUND)
def acknowledge(alert_id: AlertId, conn: Conn, who: Operator) -> dict:
    """Mark the alert as seen (scope operate); the first acknowledgement is kept."""
    found = queries.acknowledge_alert(conn, alert_id, who.name)
    if found is None:
        raise ApiError(404, "not_found", f"no alert {alert_id!r}")
    return found


@router.post("/{alert_id}/resolve", response_model=Alert, responses=NOT_FOUND)
def resolve(alert_id: AlertId, conn: Conn, who: Operator) -> dict:
    """Close the alert by hand (scope operate); beat opens a new one if the condition persists."""
    found = queries.resolve_alert(conn, alert_id, who.name)
    if found is None:
        raise ApiError(404, "not_found", f"no alert {alert_id!r}")
    return found
