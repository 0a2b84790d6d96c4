"""The API's response shapes: they make /openapi.json, and every response is checked against them.

Times are UTC (the queries convert them) and pydantic writes them as RFC 3339 with `Z`; money and energy are numbers (EUR, kWh).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel

__all__ = ["Alert", "Board", "ComponentHealth", "Connector", "HourlyRollup", "DailyRollup", "MeterPoint", "Page", "Pipeline", "PipelineDetail", "Report",
           "Session", "SessionDetail", "Station", "StationDetail", "Health"]  # fmt: skip

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class Health(BaseModel):
    status: str
    database: bool


class ConnectorBrief(BaseModel):
    connector_id: int
    status: str
    error_code: str


class Connector(BaseModel):
    connector_id: int
    status: str
    error_code: str
    info: str | None = None
    status_at: datetime


class Station(BaseModel):
    id: str
    name: str
    operator: str | None = None
    city: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    max_power_kw: float | None = None
    connector_count: int | None = None
    price_eur_per_kwh: float | None = None
    status: str
    station_status: str | None = None
    error_code: str | None = None
    last_seen_at: datetime
    last_heartbeat_at: datetime | None = None
    connectors: list[ConnectorBrief]


class Alert(BaseModel):
    id: str
    kind: str
    status: str
    severity: str
    station_id: str
    connector_id: int | None = None
    session_id: str | None = None
    error_code: str | None = None
    info: str | None = None
    since: datetime
    until: datetime | None = None
    message: str
    opened_at: datetime
    closed_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_by: str | None = None


class Today(BaseModel):
    sessions: int
    energy_kwh: float
    revenue_eur: float


class StationDetail(Station):
    connectors: list[Connector]  # type: ignore[assignment]
    open_alerts: list[Alert]
    today: Today


class Session(BaseModel):
    id: str
    station_id: str
    connector_id: int
    status: str
    start_time: datetime
    end_time: datetime | None = None
    meter_start_wh: int | None = None
    meter_max_wh: int | None = None
    meter_stop_wh: int | None = None
    price_eur_per_kwh: float | None = None
    energy_delivered_kwh: float | None = None
    cost_eur: float | None = None
    held_reason: str | None = None  # why a session is held (DESIGN.md invariant 5): then no energy and no cost
    stop_reason: str | None = None
    power_kw: float | None = None
    soc_percent: float | None = None
    last_event_at: datetime


class MeterPoint(BaseModel):
    timestamp: datetime
    event_type: str | None = None
    meter_wh: int | None = None
    power_kw: float | None = None


class SessionDetail(Session):
    meter_curve: list[MeterPoint]


class HourlyRollup(BaseModel):
    hour_start: datetime
    sessions_started: int
    sessions_completed: int
    energy_kwh: float
    revenue_eur: float
    utilization_pct: float


class DailyRollup(BaseModel):
    day: date
    scope: str
    key: str
    stations: int
    connectors: int
    sessions_started: int
    sessions_completed: int
    energy_kwh: float
    revenue_eur: float
    utilization_pct: float
    timezone: str


class Report(BaseModel):
    day: date
    kind: str
    timezone: str
    stations: int
    sessions_started: int
    energy_kwh: float
    revenue_eur: float
    generated_at: datetime
    html_url: str
    csv_url: str


class SinkHealth(BaseModel):
    sink: str
    last_batch_at: datetime | None = None
    batches_unsettled: int


class Pipeline(BaseModel):
    last_write_at: datetime | None = None
    idle_s: float | None = None
    sinks: list[SinkHealth]
    open_alerts_by_kind: dict[str, int]


class PartitionLag(BaseModel):
    topic: str
    partition: int
    committed: int
    end: int
    lag: int


class DeadLetter(BaseModel):
    reason: str | None = None
    detail: str | None = None
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    station_id: str | None = None
    received_at: datetime | None = None


class DeadLetters(BaseModel):
    by_reason: dict[str, int]
    latest: list[DeadLetter]


class ComponentHealth(BaseModel):
    """One part of the pipeline: `name` is postgresql, kafka, search, redis, bridge, beat, gateway or
    `worker <queue>`; `unknown` when what would tell (the broker) does not answer."""

    name: str
    status: Literal["up", "down", "unknown"]
    detail: str


class PipelineDetail(Pipeline):
    """`null` parts could not be read now; `unreachable` says which store did not answer and why."""

    consumer_lag: list[PartitionLag] | None = None
    queues: dict[str, int] | None = None
    deadletters: DeadLetters | None = None
    unreachable: dict[str, str]
    components: list[ComponentHealth]
    batches_in_flight: int | None = None


class Counters(BaseModel):
    sessions_running: int
    sessions_done: int
    energy_kwh: float
    revenue_eur: float


class BoardStation(BaseModel):
    id: str
    name: str
    operator: str | None = None
    city: str | None = None
    status: str
    connectors: list[ConnectorBrief]
    last_seen_at: datetime


class Board(BaseModel):
    generated_at: datetime
    counters: Counters
    stations_by_status: dict[str, int]
    stations: list[BoardStation]
    open_alerts: list[Alert]
    pipeline: Pipeline
