"""The ingest workers: Celery tasks for queue `persist` (PostgreSQL) and queue `index` (Elasticsearch).

`workers.tasks` declares `evmonitor.persist_batch` and `evmonitor.index_batch` as shared tasks;
`evmonitor.app` composes them into the Celery app. Run a worker with
`evmonitor worker -Q persist` or `celery -A evmonitor.app worker -Q persist`.
"""

from workers.tasks import IngestTask, index_batch, persist_batch

__all__ = ["IngestTask", "index_batch", "persist_batch"]
