"""The operators' room: REST API, live page and metrics over the pipeline's stores (FastAPI).

It reads what the pipeline wrote (PostgreSQL, the search server) through one module of
queries (`evmonitor.api.queries`) that the CLI views share, and writes only tokens, browser
sessions and alert acknowledgements.
"""

from evmonitor.api.app import create_api

__all__ = ["create_api"]
