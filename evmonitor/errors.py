"""Errors of evmonitor, in two families: permanent (the data) and transient (a service).

    Exception
    └── EvmonitorError          base of every error evmonitor raises on purpose
        ├── InvalidEvent        permanent: the input itself is wrong. Dead-lettered, never retried.
        │   │                   Carries a `Reason` that travels with the record.
        │   └── SinkRejected    a store refused an event for a reason retrying cannot fix
        │                       (`Reason.SINK_REJECTED`); a store's `write` returns it as a
        │                       `Rejected` event (see `evmonitor.storage.sink.Sink`)
        ├── TransientError      a service (Kafka, Redis, PostgreSQL, Elasticsearch) is unreachable,
        │                       busy or failing. Retried with backoff; never a reason to
        │                       dead-letter valid data.
        ├── ConfigError         the operator must change something (a setting, a missing service).
        └── BridgeHalted        the bridge stopped on purpose, e.g. the stream is mostly invalid
                                (defined in `evmonitor.bridge.bridge`, where it is raised)

Driver exceptions (psycopg2/SQLAlchemy, elasticsearch/elastic_transport, kafka-python) are
translated into these once per store, at the edge, and each mapping has a test that walks the
driver's exception classes: `evmonitor.storage.postgres.translate_errors`,
`evmonitor.storage.search.translate_errors` and `evmonitor.storage.kafka.translate_errors`.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ConfigError", "EvmonitorError", "InvalidEvent", "Reason", "SinkRejected", "TransientError"]


class Reason(StrEnum):
    """Machine-readable reason a record went to the dead-letter topic."""

    TOO_LARGE = "too_large"
    EMPTY_VALUE = "empty_value"  # a Kafka tombstone (null value), or no bytes but whitespace
    INVALID_JSON = "invalid_json"
    INVALID_TEXT = "invalid_text"  # bytes that are not UTF-8, or a string that cannot become UTF-8
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    INVALID_VALUE = "invalid_value"
    OUT_OF_RANGE = "out_of_range"
    NON_FINITE = "non_finite"
    TIMESTAMP_OUT_OF_WINDOW = "timestamp_out_of_window"
    # validation itself failed on the record: a bug of ours, never the producer's; the original
    # bytes are kept so that the record can be replayed once it is fixed
    INTERNAL_ERROR = "internal_error"
    # raised by a sink, not by the contract: the store refused the event for good
    SINK_REJECTED = "sink_rejected"


class EvmonitorError(Exception):
    """Base of every error evmonitor raises on purpose."""


class InvalidEvent(EvmonitorError):
    """The event breaks the contract. Permanent: dead-letter it with `reason`."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class SinkRejected(InvalidEvent):
    """A store refused an event for a reason that retrying will not fix."""

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.SINK_REJECTED, detail)


class TransientError(EvmonitorError):
    """A service is down or busy. Retry with backoff; the data is fine."""


class ConfigError(EvmonitorError):
    """Something the operator must fix; the message says what to do."""
