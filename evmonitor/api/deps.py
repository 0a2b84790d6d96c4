"""What every route depends on: the settings, a database connection, the clock, and who is asking.

Auth is a dependency, never repeated in a route: `reader` (scope read or operate) and `operator`
(scope operate) answer 401 without a live token and 403 without the scope. A token comes as
`Authorization: Bearer <token>` or, from a browser, as the session cookie set by `/login`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
import re
from datetime import date
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Request
from pydantic import BeforeValidator

from evmonitor.api import queries
from evmonitor.api.errors import ApiError
from evmonitor.config import Settings

__all__ = ["COOKIE", "Clock", "Conn", "IsoDate", "Principal", "Rfc3339", "earlier", "operator", "reader", "settings_of", "utc",
           "Views"]  # fmt: skip

COOKIE = "evmon_session"


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def connection(request: Request) -> Iterator[sa.Connection]:
    """One transaction per request, committed when the route returns without raising."""
    with request.app.state.engine.begin() as conn:
        yield conn


Conn = Annotated[sa.Connection, Depends(connection)]


@dataclass(frozen=True)
class Views:
    """The request's clock and the windows derived from it (today in the configured zone, offline)."""

    now: datetime
    day_start: datetime
    offline_before: datetime


def views(request: Request) -> Views:
    settings: Settings = request.app.state.settings
    now = request.app.state.clock()
    local = now.astimezone(settings.zone)
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(timezone.utc)
    return Views(now=now, day_start=day_start, offline_before=now - settings.offline_after)


Clock = Annotated[Views, Depends(views)]


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _rfc3339(value: Any) -> Any:
    # pydantic alone would also take a number of seconds since 1970 (`until=0.5`): not what we document
    if isinstance(value, str) and not _RFC3339.fullmatch(value.strip()):
        raise ValueError("give a time in RFC 3339, e.g. 2026-01-31T08:00:00Z")
    return value


def _iso_date(value: Any) -> Any:
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value.strip()):
        raise ValueError("give a day as YYYY-MM-DD")
    return value


Rfc3339 = Annotated[datetime, BeforeValidator(_rfc3339)]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]


def earlier(value: Any, delta: timedelta) -> Any:
    """`value - delta`, or the earliest value of its type where that would fall before year 1."""
    try:
        return value - delta
    except OverflowError:
        return type(value).min.replace(tzinfo=value.tzinfo) if isinstance(value, datetime) else date.min


def utc(name: str, value: datetime | None) -> datetime | None:
    """A query parameter's time in UTC; 422 without an offset or outside what PostgreSQL holds."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ApiError(422, "invalid_request", f"{name}: give an offset or Z (RFC 3339)")
    try:
        return value.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise ApiError(422, "invalid_request", f"{name}: out of range") from None


@dataclass(frozen=True)
class Principal:
    token_id: int
    name: str
    scope: str


def _principal(request: Request, conn: sa.Connection) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if header and (scheme.lower() != "bearer" or not credentials.strip()):
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <token>")
    found: dict[str, Any] | None = None
    if credentials.strip():
        found = queries.token_for_hash(conn, token_sha256=queries.token_hash(credentials.strip()))
    elif request.cookies.get(COOKIE):
        found = queries.token_for_hash(conn, session_sha256=queries.token_hash(request.cookies[COOKIE]))
    if found is None:
        raise ApiError(401, "unauthorized", "a valid token is required (evmonitor tokens create)")
    return Principal(found["id"], found["name"], found["scope"])


def _reader(request: Request) -> Principal:
    # its own short transaction, so last_used_at is kept even when the route fails
    with request.app.state.engine.begin() as conn:
        return _principal(request, conn)


def _operator(principal: Annotated[Principal, Depends(_reader)]) -> Principal:
    if principal.scope != "operate":
        raise ApiError(403, "forbidden", "this needs a token with scope 'operate'")
    return principal


reader = Depends(_reader)
operator = Depends(_operator)
Reader = Annotated[Principal, Depends(_reader)]
Operator = Annotated[Principal, Depends(_operator)]


def ttl(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.api_session_ttl_s)
