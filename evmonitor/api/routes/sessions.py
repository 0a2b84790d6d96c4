"""`/api/v1/sessions`: charging sessions, one with its meter curve, and a CSV export."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from evmonitor.api import queries
from evmonitor.api.deps import Conn, Rfc3339, reader, utc
from evmonitor.api.errors import ERROR_RESPONSES, ApiError
from evmonitor.api.models import Page, Session, SessionDetail
from evmonitor.csvsafe import csv_row, csv_writer

router = APIRouter(prefix="/sessions", tags=["sessions"], dependencies=[reader], responses=ERROR_RESPONSES)

SessionStatus = Literal["active", "completed", "stale"]
CSV_COLUMNS = ("id", "station_id", "connector_id", "status", "start_time", "end_time", "meter_start_wh",
               "meter_stop_wh", "energy_delivered_kwh", "price_eur_per_kwh", "cost_eur", "held_reason", "stop_reason")  # fmt: skip


class Filters:
    def __init__(
        self,
        station_id: Annotated[str | None, Query(max_length=64)] = None,
        status: SessionStatus | None = None,
        since: Annotated[Rfc3339 | None, Query(description="start_time at or after (RFC 3339)")] = None,
        until: Annotated[Rfc3339 | None, Query(description="start_time before (RFC 3339)")] = None,
    ) -> None:
        self.station_id, self.status = station_id, status
        self.since, self.until = utc("since", since), utc("until", until)


@router.get("", response_model=Page[Session])
def list_sessions(
    conn: Conn,
    filters: Annotated[Filters, Depends()],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict:
    """Sessions, newest start first, by station, status and start-time range."""
    try:
        items, nxt = queries.session_list(conn, station_id=filters.station_id, status=filters.status,
                                          since=filters.since, until=filters.until, limit=limit, cursor=cursor)  # fmt: skip
    except ValueError as exc:
        raise ApiError(422, "invalid_request", f"cursor: {exc}") from None
    return {"items": items, "next_cursor": nxt}


@router.get("/export.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}})  # fmt: skip
def export_sessions(request: Request, filters: Annotated[Filters, Depends()]) -> StreamingResponse:
    """The filtered sessions as CSV, streamed; cells that a spreadsheet would run as a formula are neutralised."""

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv_writer(buffer)
        writer.writerow(CSV_COLUMNS)
        with request.app.state.engine.connect() as conn:
            for n, row in enumerate(queries.session_rows(conn, station_id=filters.station_id, status=filters.status,
                                                         since=filters.since, until=filters.until)):  # fmt: skip
                writer.writerow(csv_row(_cell(row[c]) for c in CSV_COLUMNS))
                if n % 500 == 0:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(rows(), media_type="text/csv",
                             headers={"Content-Disposition": 'attachment; filename="sessions.csv"'})  # fmt: skip


def _cell(value: object) -> object:
    """Text as it is, times in UTC RFC 3339, numbers as numbers (a negative number is no formula)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


@router.get("/{session_id}", response_model=SessionDetail, responses={404: {"model": ERROR_RESPONSES[401]["model"]}})
def get_session(session_id: UUID, conn: Conn, request: Request) -> dict:
    """One session with its meter curve, read from the event log in the search server."""
    found = queries.session_detail(conn, str(session_id))
    if found is None:
        raise ApiError(404, "not_found", f"no session {session_id}")
    settings = request.app.state.settings
    found["meter_curve"] = queries.meter_curve(request.app.state.search, settings.index_prefix, str(session_id))
    return found
