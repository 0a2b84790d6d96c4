"""`/api/v1/pipeline`: is the pipeline keeping up (batches per sink, open alerts by kind)."""

from __future__ import annotations

from fastapi import APIRouter

from evmonitor.api import queries
from evmonitor.api.deps import Clock, Conn, reader
from evmonitor.api.errors import ERROR_RESPONSES
from evmonitor.api.models import Pipeline

router = APIRouter(prefix="/pipeline", tags=["pipeline"], dependencies=[reader], responses=ERROR_RESPONSES)


@router.get("", response_model=Pipeline)
def pipeline(conn: Conn, clock: Clock) -> dict:
    """The last write to PostgreSQL, batches not yet committed per sink, open alerts by kind."""
    return queries.pipeline_health(conn, now=clock.now)
