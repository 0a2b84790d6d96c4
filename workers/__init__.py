"""Celery workers of evmonitor: queue `persist` (PostgreSQL) and queue `index` (Elasticsearch).

Run with `evmonitor worker -Q persist` or `celery -A workers.app worker -Q persist`.
"""
