"""evmonitor: a real-time data pipeline for EV charging networks.

The package is laid out as rooms, each importing only the rooms below it (docs/architecture.md;
`tests/unit/test_layers.py` checks it):

    core        config, names, errors, contract, fold, deadletter, poison, runtime, transport,
                storage/ (PostgreSQL, Elasticsearch, Kafka), bridge/ (Kafka -> Celery)
    reports/    daily report values -> HTML, CSV, charts
    simulator/  a deterministic Faker fleet that produces events (a producer, like a charger)
    app         the Celery app: composes `workers` and `beat` (top-level packages)
    stack/      run and prove the pipeline: embedded services, up/down/status, sandboxes,
                simulation driver, reconciliation, demo, fault matrix
    cli         the `evmonitor` command

This package re-exports the core's front door: the settings, the event contract and `validate`.
"""

from evmonitor.config import Settings
from evmonitor.contract import Event, EventType, Rejection, validate

__version__ = "0.1.0"

__all__ = ["Event", "EventType", "Rejection", "Settings", "__version__", "validate"]
