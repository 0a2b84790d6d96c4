"""One router per resource (FastAPI's "Bigger Applications" layout); `app.py` mounts them."""

from evmonitor.api.routes import (
    alerts,
    auth,
    board,
    health,
    metrics,
    outages,
    pages,
    pipeline,
    reports,
    rollups,
    sessions,
    stations,
    uptime,
)

__all__ = ["alerts", "auth", "board", "health", "metrics", "outages", "pages", "pipeline", "reports", "rollups",
           "sessions", "stations", "uptime"]  # fmt: skip
