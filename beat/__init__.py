"""Periodic maintenance jobs run by Celery beat on queue `maintenance`."""
