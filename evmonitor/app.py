"""The Celery application the processes run: `evmonitor.transport` plus the task modules.

`workers.tasks` (queues `persist` and `index`) and `beat.jobs` (queue `maintenance`) declare
their tasks with `shared_task`, so neither imports an app, and neither imports the other; they
are composed here, by name (`include=`), together with beat's schedule. Nothing in the pipeline
core imports this module: the bridge publishes through `evmonitor.transport` by task name.

`celery -A evmonitor.app worker ...` finds the app as the attribute `app`, built from the
environment on first access.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from beat.schedule import configure as configure_beat
from evmonitor.config import Settings
from evmonitor.transport import make_celery

__all__ = ["TASK_MODULES", "create_app"]

TASK_MODULES = ("workers.tasks", "beat.jobs")


def create_app(settings: Settings | None = None) -> Celery:
    """The full app: transport, every task module, and beat's schedule for `settings`."""
    settings = settings or Settings()
    celery = make_celery(settings, include=TASK_MODULES)
    configure_beat(celery, settings)
    return celery


_app: Celery | None = None


def __getattr__(name: str) -> Any:
    # `celery -A evmonitor.app` looks up `app`; build it lazily so importing this module reads no env
    global _app
    if name == "app":
        if _app is None:
            _app = create_app()
        return _app
    raise AttributeError(name)
