"""The Celery application, configured from one `Settings` object.

Delivery: tasks are acknowledged late (after they ran) and rejected back to the queue if the
pool process running them dies, so a killed worker child never loses a batch. Redis keeps
nothing on disk on our machines, so the broker is not the durable log: Kafka is. The bridge
re-publishes any batch whose completion marker does not appear in PostgreSQL in time; see
docs/delivery.md.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from beat.schedule import configure as configure_beat
from evmonitor.config import Settings

__all__ = ["QUEUES", "app", "create_app"]

QUEUES = ("persist", "index", "maintenance")


def create_app(settings: Settings | None = None) -> Celery:
    settings = settings or Settings()
    celery = Celery("evmonitor", broker=settings.broker_url, include=["workers.tasks", "beat.jobs"])
    celery.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=settings.worker_prefetch,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="maintenance",
        task_routes={
            "evmonitor.persist_batch": {"queue": "persist"},
            "evmonitor.index_batch": {"queue": "index"},
            "evmonitor.maintenance.*": {"queue": "maintenance"},
        },
        # the bridge handles a failed publish itself (it keeps the batch and tries again)
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        task_annotations={
            name: {"retry_backoff_max": settings.retry_backoff_max_s}
            for name in ("evmonitor.persist_batch", "evmonitor.index_batch")
        },
        worker_send_task_events=True,
        task_send_sent_event=False,
        timezone=settings.timezone,
        enable_utc=True,
    )
    celery.conf.evmonitor_settings = settings
    configure_beat(celery, settings)
    return celery


app = create_app()
