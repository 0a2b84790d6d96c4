"""`/api/v1/uptime`: uptime per port and per station, the figures of `evmonitor uptime --json`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from evmonitor.api.deps import reader
from evmonitor.api.errors import ERROR_RESPONSES, ApiError
from evmonitor.api.models import UptimeReport
from evmonitor.errors import ConfigError
from evmonitor.ledger import parse_period, uptime_report

router = APIRouter(prefix="/uptime", tags=["uptime"], dependencies=[reader], responses=ERROR_RESPONSES)


@router.get("", response_model=UptimeReport)
def get_uptime(
    request: Request,
    station_id: Annotated[str | None, Query(max_length=64)] = None,
    first: Annotated[str | None, Query(alias="from", max_length=10, description="first local day YYYY-MM-DD (EVMON_TIMEZONE)")] = None,
    last: Annotated[str | None, Query(alias="to", max_length=10, description="last local day, inclusive")] = None,
    month: Annotated[str | None, Query(max_length=7, description="a whole month YYYY-MM instead of from/to; adds "
                                       "each port's trailing_12_months")] = None,
) -> dict:
    """(T_total - (T_outage - T_excluded)) / T_total x 100 per port and per station, from the outage ledger."""
    settings = request.app.state.settings
    try:
        first_day, last_day = parse_period(first, last, month)
        return uptime_report(request.app.state.engine, settings, first_day, last_day, request.app.state.clock(),
                             station_id=station_id, month=month)  # fmt: skip
    except ConfigError as exc:
        raise ApiError(422, "invalid_request", str(exc).replace("--", "")) from None
