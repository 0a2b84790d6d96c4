"""The operator's pages: `/` (the live board) and `/stations/{id}`; without a session, to /login."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from evmonitor.api import queries
from evmonitor.api.deps import COOKIE, views
from evmonitor.api.page import board_page, station_page

router = APIRouter(include_in_schema=False)


def _signed_in(request: Request) -> bool:
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return False
    with request.app.state.engine.begin() as conn:
        return queries.token_for_hash(conn, session_sha256=queries.token_hash(cookie)) is not None


@router.get("/", response_class=HTMLResponse)
def board(request: Request) -> Response:
    if not _signed_in(request):
        return RedirectResponse("/login", status_code=303)
    clock = views(request)
    with request.app.state.engine.connect() as conn:
        data = queries.board(conn, offline_before=clock.offline_before, day_start=clock.day_start, now=clock.now)
    return HTMLResponse(board_page(data, request.app.state.settings.network_name))


@router.get("/stations/{station_id}", response_class=HTMLResponse)
def station(station_id: str, request: Request) -> Response:
    if not _signed_in(request):
        return RedirectResponse("/login", status_code=303)
    clock = views(request)
    with request.app.state.engine.connect() as conn:
        found = queries.station_detail(conn, station_id, offline_before=clock.offline_before, day_start=clock.day_start)
        sessions = queries.session_list(conn, station_id=station_id, limit=50)[0] if found else []
    if found is None:
        return HTMLResponse("<!doctype html><p>No such station. <a href='/'>Back to the board</a></p>", status_code=404)
    latest = sessions[0]["id"] if sessions else None
    settings = request.app.state.settings
    try:
        curve = queries.meter_curve(request.app.state.search, settings.index_prefix, latest) if latest else []
    except Exception:  # the page still shows the rest when the search server is down
        curve = []
    return HTMLResponse(station_page(found, sessions, curve, latest))
