"""`/api/v1/pipeline`: is the pipeline keeping up (lag, queues, dead letters, unsettled batches, open alerts),
and is each of its parts up (stores, broker, bridge, beat, gateway, the workers of each queue)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from evmonitor.api import queries
from evmonitor.api.deps import Clock, Conn, reader
from evmonitor.api.errors import ERROR_RESPONSES
from evmonitor.api.models import PipelineDetail
from evmonitor.errors import TransientError
from evmonitor.names import EVENT_TOPICS, Queue

router = APIRouter(prefix="/pipeline", tags=["pipeline"], dependencies=[reader], responses=ERROR_RESPONSES)


@router.get("", response_model=PipelineDetail)
def pipeline(conn: Conn, clock: Clock, request: Request) -> dict:
    """The last write to PostgreSQL, unsettled batches, open alerts; consumer lag per partition, queue depths and
    dead letters by reason with the latest ones (each `null` when its store does not answer); `components`: each
    part's health (the bridge, beat and gateway by their heartbeats in Redis, workers by Celery's inspect);
    `batches_in_flight`: published by the bridge and not yet in every sink (`null` without a live bridge)."""
    settings = request.app.state.settings
    found: dict[str, Any] = queries.pipeline_health(conn, now=clock.now)
    found["unreachable"] = {}
    probes = {
        "consumer_lag": ("kafka", lambda: queries.consumer_lag(settings.kafka_bootstrap, settings.consumer_group,
                                                               [str(t) for t in EVENT_TOPICS])),
        "queues": ("redis", lambda: queries.queue_depths(settings.broker_url, settings.broker_key_prefix,
                                                         [str(q) for q in Queue])),
        "deadletters": ("search", lambda: queries.deadletter_summary(request.app.state.search, settings.deadletters_index)),
    }  # fmt: skip
    for key, (store, probe) in probes.items():
        try:
            found[key] = probe()
        except TransientError as exc:
            found[key] = None
            found["unreachable"][store] = str(exc)
    # PostgreSQL answered already: the token was checked and the query above ran there
    reached = {"postgresql": None, "kafka": found["unreachable"].get("kafka"), "search": found["unreachable"].get("search")}
    found["components"], found["batches_in_flight"] = queries.component_health(settings, _celery(request), reached=reached)
    return found


def _celery(request: Request) -> Any:
    """One Celery app per API app, made on first use: it only broadcasts inspect requests."""
    state = request.app.state
    if getattr(state, "celery", None) is None:
        from evmonitor.transport import make_celery

        state.celery = make_celery(state.settings)
    return state.celery
