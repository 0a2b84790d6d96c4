"""`/api/v1/outages`: the outage ledger per port; exclude and include need scope `operate` (audited)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from evmonitor.api.deps import Operator, reader, utc
from evmonitor.api.errors import ERROR_RESPONSES, ApiError, ErrorBody
from evmonitor.api.models import Outage, OutageCauseChange, OutageInclude, Page
from evmonitor.api.queries import PageCursor, cursor_time
from evmonitor.errors import ConfigError
from evmonitor.ledger import list_outages, set_cause
from evmonitor.names import OutageCause

router = APIRouter(prefix="/outages", tags=["outages"], dependencies=[reader], responses=ERROR_RESPONSES)

OutageId = Annotated[str, Path(min_length=1, max_length=300)]
NOT_FOUND = {404: {"model": ErrorBody, "description": "no such outage"}}


@router.get("", response_model=Page[Outage])
def get_outages(
    request: Request,
    station_id: Annotated[str | None, Query(max_length=64)] = None,
    open: Annotated[bool, Query(description="only outages still going on")] = False,
    since: Annotated[datetime | None, Query(alias="from", description="outages that end after this (RFC 3339)")] = None,
    until: Annotated[datetime | None, Query(alias="to", description="outages that start before this (RFC 3339)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict:
    """Outages newest start first, by station, still open, and overlapping [from, to)."""
    after = None
    if cursor:
        try:
            at, oid = PageCursor.decode(cursor, 2)
            after = (cursor_time(at), str(oid))
        except ValueError as exc:
            raise ApiError(422, "invalid_request", f"cursor: {exc}") from None
    rows = list_outages(request.app.state.engine, request.app.state.settings, station_id=station_id, open_only=open,
                        since=utc("from", since), until=utc("to", until), limit=limit + 1, after=after)  # fmt: skip
    if len(rows) <= limit:
        return {"items": rows, "next_cursor": None}
    rows = rows[:limit]
    return {"items": rows, "next_cursor": PageCursor.encode(rows[-1]["started_at"], rows[-1]["id"])}


def _set(request: Request, outage_id: str, cause: OutageCause, note: str | None, who: str) -> dict:
    try:
        return set_cause(request.app.state.engine, request.app.state.settings, outage_id, cause, note, by=who,
                         now=request.app.state.clock())  # fmt: skip
    except ConfigError:
        raise ApiError(404, "not_found", f"no outage {outage_id!r}") from None


@router.post("/{outage_id}/exclude", response_model=Outage, responses=NOT_FOUND)
def exclude(outage_id: OutageId, body: OutageCauseChange, request: Request, who: Operator) -> dict:
    """Give an outage its cause and a note (scope operate; audited with the token's name). Causes in
    EVMON_UPTIME_EXCLUDED_CAUSES do not count against uptime; `excluded` in the answer says which."""
    return _set(request, outage_id, body.cause, body.note, who.name)


@router.post("/{outage_id}/include", response_model=Outage, responses=NOT_FOUND)
def include(outage_id: OutageId, request: Request, who: Operator, body: OutageInclude | None = None) -> dict:
    """Count an outage against uptime again: its cause goes back to `unknown` (scope operate; audited)."""
    return _set(request, outage_id, OutageCause.UNKNOWN, body.note if body else None, who.name)
