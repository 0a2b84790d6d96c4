"""The pipeline's own wire values, one `StrEnum` each: topics, sinks, queues, task names, stages.

These strings cross process boundaries (Kafka topic names, Celery queue and task names, the
`sink` column of `ingest_batches`, the `stage` of a dead letter), so each is written exactly once,
here, and every other module names the member. The event contract's own enumerations (event
types, OCPP statuses, error codes, stop reasons) live with the contract in `evmonitor.contract`.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "DEFAULT_EXCLUDED_CAUSES",
    "EVENT_TOPICS",
    "MAINTENANCE_TASK_PREFIX",
    "OutageCause",
    "QUEUE_BY_SINK",
    "TASK_BY_SINK",
    "Queue",
    "SinkName",
    "Stage",
    "StatusInfo",
    "TaskName",
    "Topic",
    "WorkerPool",
    "INGEST_POOL",
]


class Topic(StrEnum):
    """Kafka topics of ../shared/DESIGN.md (one per kind of event, plus the dead letters)."""

    STATION_STATUS = "ev.station.status"
    SESSION_STARTED = "ev.session.started"
    SESSION_PROGRESS = "ev.session.progress"
    SESSION_COMPLETED = "ev.session.completed"
    DEADLETTER = "ev.deadletter"


EVENT_TOPICS: tuple[Topic, ...] = (
    Topic.STATION_STATUS,
    Topic.SESSION_STARTED,
    Topic.SESSION_PROGRESS,
    Topic.SESSION_COMPLETED,
)


class SinkName(StrEnum):
    """Where valid events go. A Kafka offset is committed once every sink holds its events."""

    PERSIST = "persist"
    INDEX = "index"


class Queue(StrEnum):
    """Celery queues: one per sink, and one for beat's jobs."""

    PERSIST = "persist"
    INDEX = "index"
    MAINTENANCE = "maintenance"


QUEUE_BY_SINK: dict[SinkName, Queue] = {SinkName.PERSIST: Queue.PERSIST, SinkName.INDEX: Queue.INDEX}

MAINTENANCE_TASK_PREFIX = "evmonitor.maintenance."


class TaskName(StrEnum):
    """Celery task names (explicit and namespaced, so producer and worker agree without imports)."""

    PERSIST_BATCH = "evmonitor.persist_batch"
    INDEX_BATCH = "evmonitor.index_batch"


TASK_BY_SINK: dict[SinkName, TaskName] = {SinkName.PERSIST: TaskName.PERSIST_BATCH, SinkName.INDEX: TaskName.INDEX_BATCH}


class Stage(StrEnum):
    """Where in the pipeline a record was dead-lettered."""

    BRIDGE = "bridge"
    PERSIST = "persist"
    INDEX = "index"
    GATEWAY = "gateway"  # the OCPP gateway: a charger frame it could not read


class StatusInfo(StrEnum):
    """Machine-readable starts of a `station_status` event's optional `info` that our producers write.

    The contract's `status` has no value for "the station's connection closed", so the gateway
    publishes Unavailable with `info` = "connection_closed: <the websocket's close reason>"; the
    outage ledger names that signal `connection_closed` (beat/uptime_rules.py).
    """

    CONNECTION_CLOSED = "connection_closed"


class OutageCause(StrEnum):
    """Why a port was down, as an operator records it on an outage (`evmonitor outages exclude`).

    Which causes leave the operator's control, and so do not count against uptime, is the
    `uptime_excluded_causes` setting (default `DEFAULT_EXCLUDED_CAUSES`, after 23 CFR 680.116(b)).
    """

    UTILITY_INTERRUPTION = "utility_interruption"
    VEHICLE_FAULT = "vehicle_fault"
    SCHEDULED_MAINTENANCE = "scheduled_maintenance"
    VANDALISM = "vandalism"
    NATURAL_DISASTER = "natural_disaster"
    OUTSIDE_OPERATING_HOURS = "outside_operating_hours"
    EQUIPMENT_FAILURE = "equipment_failure"
    SOFTWARE_FAILURE = "software_failure"
    UNKNOWN = "unknown"


DEFAULT_EXCLUDED_CAUSES: tuple[OutageCause, ...] = tuple(OutageCause)[:6]


class WorkerPool(StrEnum):
    """Celery execution pools `evmonitor worker --pool` offers."""

    PREFORK = "prefork"  # a parent consumes, decodes and pipes each task to a child process
    SOLO = "solo"  # the worker process runs its tasks itself: one decode, no pipe
    THREADS = "threads"  # a thread pool in the worker process


# the pool of the persist and index workers `evmonitor up` and the sandbox start (chosen by
# measurement, see docs/operations.md); more throughput = more worker processes
INGEST_POOL = WorkerPool.SOLO
