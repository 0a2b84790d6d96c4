"""`/api/v1/board`: what the live page shows, as JSON and as a server-sent event stream.

The stream polls PostgreSQL every `EVMON_API_POLL_S` (default 1 s) and sends the board when it
changed, so a status that reached PostgreSQL shows on the page within about a second; a comment
line every 15 s keeps proxies from closing an idle stream. Every 10 s the stream checks the token
again: once it is revoked (or the browser signed out) the stream says `signed-out` and ends.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from evmonitor.api import queries
from evmonitor.api.deps import Clock, Conn, _reader, reader, views
from evmonitor.api.errors import ERROR_RESPONSES, ApiError
from evmonitor.api.models import Board

RECHECK_S = 10.0

router = APIRouter(prefix="/board", tags=["board"], dependencies=[reader], responses=ERROR_RESPONSES)


def snapshot(request: Request) -> str:
    clock = views(request)
    with request.app.state.engine.connect() as conn:
        data = queries.board(conn, offline_before=clock.offline_before, day_start=clock.day_start, now=clock.now)
    return Board.model_validate(data).model_dump_json()


@router.get("", response_model=Board)
def get_board(conn: Conn, clock: Clock) -> dict:
    """Today's counters, every station with its board status, open alerts and pipeline health."""
    return queries.board(conn, offline_before=clock.offline_before, day_start=clock.day_start, now=clock.now)


@router.get("/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}})  # fmt: skip
async def stream(request: Request) -> StreamingResponse:
    """Server-sent events: `data: <board JSON>` whenever the board changes (generated_at aside)."""
    poll_s = request.app.state.settings.api_poll_s

    async def events() -> AsyncIterator[str]:
        last, last_sent = "", time.monotonic()
        next_check = time.monotonic() + RECHECK_S
        while not await request.is_disconnected():
            if time.monotonic() >= next_check:  # a revoked token or ended session closes the stream
                next_check = time.monotonic() + RECHECK_S
                try:
                    await run_in_threadpool(_reader, request)
                except ApiError:
                    yield "event: signed-out\ndata: {}\n\n"
                    return
            board = await run_in_threadpool(snapshot, request)
            comparable = json.loads(board)
            comparable.pop("generated_at")
            key = json.dumps(comparable, sort_keys=True)
            if key != last:
                last, last_sent = key, time.monotonic()
                yield f"data: {board}\n\n"
            elif time.monotonic() - last_sent > 15:
                last_sent = time.monotonic()
                yield ": still here\n\n"
            await asyncio.sleep(poll_s)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})  # fmt: skip
