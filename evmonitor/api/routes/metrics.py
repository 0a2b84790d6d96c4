"""`/metrics`: the Prometheus exposition (needs a token: Prometheus sends it as a bearer token)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from evmonitor.api.deps import reader
from evmonitor.api.errors import ERROR_RESPONSES

router = APIRouter(tags=["metrics"], dependencies=[reader], responses=ERROR_RESPONSES)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
async def metrics(request: Request) -> Response:
    """Prometheus text format: API requests and latency, stations by status, sessions, open alerts."""
    body = await run_in_threadpool(generate_latest, request.app.state.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
