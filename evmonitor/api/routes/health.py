"""`/healthz`: the one door without a lock (load balancers and `evmonitor up` poll it)."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from evmonitor.api.models import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz(request: Request) -> JSONResponse:
    """Up when the process answers; `database` says whether PostgreSQL does."""
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        ok = True
    except Exception:
        ok = False
    return JSONResponse({"status": "ok" if ok else "degraded", "database": ok}, status_code=200 if ok else 503)
