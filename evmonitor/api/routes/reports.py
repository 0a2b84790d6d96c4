"""`/api/v1/reports`: the daily reports beat wrote, and their HTML and CSV files."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from evmonitor.api import queries
from evmonitor.api.deps import Conn, IsoDate, reader
from evmonitor.api.errors import ERROR_RESPONSES, ApiError, ErrorBody
from evmonitor.api.models import Report

router = APIRouter(prefix="/reports", tags=["reports"], dependencies=[reader], responses=ERROR_RESPONSES)


@router.get("", response_model=list[Report])
def list_reports(conn: Conn) -> list[dict]:
    """Reports, newest day first, with links to download each."""
    rows = queries.report_list(conn)
    for row in rows:
        row["html_url"] = f"/api/v1/reports/{row['day'].isoformat()}/html"
        row["csv_url"] = f"/api/v1/reports/{row['day'].isoformat()}/csv"
    return rows


@router.get("/{day}/{fmt}", response_class=FileResponse,
            responses={200: {"content": {"text/html": {}, "text/csv": {}}},
                       404: {"model": ErrorBody, "description": "no such report"}})  # fmt: skip
def download(day: IsoDate, fmt: Literal["html", "csv"], conn: Conn, request: Request) -> FileResponse:
    """The daily report of `day` as HTML or CSV (only files inside the reports folder are served)."""
    row = next((r for r in queries.report_list(conn, limit=10000) if r["day"] == day and r["kind"] == "daily"), None)
    folder = Path(request.app.state.settings.reports_path).resolve()
    path = Path(row[f"{fmt}_path"]).resolve() if row else None
    if path is None or not path.is_relative_to(folder) or not path.is_file():
        raise ApiError(404, "not_found", f"no {fmt} report for {day}")
    return FileResponse(path, media_type="text/html" if fmt == "html" else "text/csv", filename=path.name)
