"""`create_api(settings)`: the FastAPI application behind `evmonitor api`.

    /healthz                 no auth
    /login, /logout          the browser's sign-in (a session cookie)
    /, /stations/{id}        the live operator page (signed-in browsers)
    /api/v1/...              one router per resource (routes/), bearer token or session cookie
    /metrics                 Prometheus exposition (bearer token)
    /openapi.json, /docs     the API's description (bearer token or session cookie, like the rest)

The engine, the search client and the metrics registry live on `app.state`, one per app, so
tests build as many isolated apps as they like.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timezone

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from evmonitor.api.deps import reader
from evmonitor.api.errors import error, install_error_handlers
from evmonitor.api.metrics import ApiMetrics
from evmonitor.api.routes import alerts, auth, board, health, metrics, pages, pipeline, reports, rollups, sessions, stations
from evmonitor.config import Settings
from evmonitor.storage.postgres import create_engine
from evmonitor.storage.search import make_client

__all__ = ["create_api"]

API_V1 = "/api/v1"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def create_api(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.engine.dispose()

    app = FastAPI(
        lifespan=lifespan,
        title="evmonitor",
        version="1",
        summary="Stations, sessions, alerts, rollups and the pipeline's health of an EV charging network.",
        description="Send `Authorization: Bearer <token>` (create one with `evmonitor tokens create`). "
        "Times are UTC, RFC 3339. Lists are paged: pass `next_cursor` back as `cursor`. "
        'Every error is `{"error": {"code", "message"}}`.',
        # served below behind the token check: every door but /healthz and /login is locked
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    engine = create_engine(settings.sqlalchemy_url, pool_size=5, max_overflow=5,
                           connect_args={"connect_timeout": 5, "options": "-c timezone=UTC"})  # fmt: skip
    app.state.settings = settings
    app.state.engine = engine
    app.state.search = make_client(settings.elasticsearch_url, timeout_s=10)
    app.state.clock = clock
    app.state.metrics = ApiMetrics(engine, lambda: clock() - settings.offline_after)
    install_error_handlers(app)

    @app.middleware("http")
    async def _count(request: Request, call_next):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        if "\x00" in request.url.path or any("\x00" in k + v for k, v in request.query_params.multi_items()):
            # PostgreSQL text cannot hold NUL: refuse it here rather than fail in a query
            response = error(422, "invalid_request", "NUL characters are not allowed in a request")
        else:
            response = await call_next(request)
        app.state.metrics.observe(request.method, route_label(request.url.path), response.status_code, started)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    templates: list[tuple[re.Pattern[str], str]] = []

    def route_label(path: str) -> str:
        # a bounded label set: the documented path templates (plus the pages), never the raw path
        if not templates:
            known = [*app.openapi()["paths"], "/", "/login", "/logout", "/stations/{station_id}", "/openapi.json", "/docs"]
            templates.extend((re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(t)) + "$"), t) for t in known)
        return next((t for pattern, t in templates if pattern.match(path)), "other")

    @app.get("/openapi.json", include_in_schema=False, dependencies=[reader])
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[reader])
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="evmonitor API")

    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(pages.router)
    app.include_router(metrics.router)
    for resource in (stations, sessions, alerts, rollups, reports, pipeline, board):
        app.include_router(resource.router, prefix=API_V1)

    return app
