"""Elasticsearch: the event log, one document per valid event.

Documents go to the concrete daily index `charging-events-YYYY.MM.DD` (UTC day of the event)
with `_id = event_id`, so a replay overwrites a document with itself. The index template
(`index_template.json`) maps the fields explicitly and puts every daily index behind the alias
`charging-events`; the pattern `charging-events*` finds them too.

`translate_errors` maps client exceptions once: connection problems, 429 and 5xx become
`TransientError`; a request refused for its content, `SinkRejected`. A per-document 4xx in a
bulk answer is a `Rejected` event of the `Sink` contract.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from elastic_transport import TransportError, Urllib3HttpNode
from elasticsearch import ApiError, Elasticsearch

from evmonitor.errors import SinkRejected, TransientError
from evmonitor.names import SinkName
from evmonitor.poison import Event, Rejected, isolate_poison

__all__ = ["SearchStore", "bulk_body", "daily_index", "make_client", "translate_errors", "TEMPLATE_PATH"]

TEMPLATE_PATH = Path(__file__).with_name("index_template.json")
_COMPAT = "compatible-with="


class _PlainJsonNode(Urllib3HttpNode):
    """Send `application/json` instead of the 8.x client's compatibility media type.

    Elasticsearch accepts both; API-compatible servers such as osmem only the plain one.
    """

    def perform_request(self, method: str, target: str, body: Any = None, headers: Any = None, **kwargs: Any) -> Any:
        if headers:
            headers = headers.copy()
            for name in ("accept", "content-type"):
                value = headers.get(name)
                if value and _COMPAT in value:
                    headers[name] = "application/x-ndjson" if "x-ndjson" in value else "application/json"
        return super().perform_request(method, target, body=body, headers=headers, **kwargs)


def make_client(url: str, *, timeout_s: float = 30.0) -> Elasticsearch:
    return Elasticsearch(url, node_class=_PlainJsonNode, request_timeout=timeout_s, max_retries=0)


# Whole-request refusals that are about the request's content: a body the server cannot parse
# (400) or too large (413). Bisecting the batch finds the events behind them. Every other 4xx is
# about the target or the credentials (401, 403, 404): the operator fixes it, the retry lands.
_REFUSED_STATUSES = frozenset({400, 413})


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Map every elasticsearch and elastic_transport exception to `SinkRejected` (a request
    refused for its content, `_REFUSED_STATUSES`) or `TransientError` (everything else:
    unreachable, timeout, TLS, 429, 5xx, an answer that is not Elasticsearch's)."""
    try:
        yield
    except ApiError as exc:
        if exc.meta.status in _REFUSED_STATUSES:
            raise SinkRejected(f"elasticsearch {exc.meta.status}: {exc.message}") from exc
        raise TransientError(f"elasticsearch {exc.meta.status}: {exc.message}") from exc
    except (TransportError, OSError) as exc:
        raise TransientError(f"elasticsearch unreachable: {exc}") from exc


def daily_index(prefix: str, timestamp: str | datetime) -> str:
    if isinstance(timestamp, str) and timestamp.endswith("Z") and timestamp[10:11] == "T":
        # a normalised event's UTC timestamp: its first ten characters are the UTC day
        return f"{prefix}-{timestamp[0:4]}.{timestamp[5:7]}.{timestamp[8:10]}"
    ts = timestamp if isinstance(timestamp, datetime) else datetime.fromisoformat(timestamp)
    return f"{prefix}-{ts:%Y.%m.%d}"


def to_document(event: dict[str, Any]) -> dict[str, Any]:
    """The indexed form of a normalised event: the event, plus `location` where it has one."""
    doc = dict(event)
    if "latitude" in doc and "longitude" in doc:
        doc["location"] = {"lat": doc["latitude"], "lon": doc["longitude"]}
    return doc


# The bytes elastic_transport's NDJSON serializer would make of JSON values (ensure_ascii=False,
# compact separators), made by one encoder instead of a new one per line.
_NDJSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def bulk_body(prefix: str, events: Sequence[dict[str, Any]]) -> bytes:
    """The `_bulk` request for `events`: an index action keyed by event_id, then the document."""
    lines = []
    for event in events:
        lines.append(_NDJSON.encode({"index": {"_index": daily_index(prefix, event["timestamp"]), "_id": event["event_id"]}}))
        lines.append(_NDJSON.encode(to_document(event)))
    lines.append("")
    return "\n".join(lines).encode("utf-8", "surrogatepass")


class SearchStore:
    """The index sink (`Sink`): `write` bulk-indexes a batch."""

    name = SinkName.INDEX

    def __init__(self, client: Elasticsearch, prefix: str = "charging-events") -> None:
        self.client = client
        self.prefix = prefix

    @classmethod
    def connect(cls, url: str, prefix: str = "charging-events") -> "SearchStore":
        return cls(make_client(url), prefix)

    def install_template(self) -> None:
        """Create or update the index template for `<prefix>-*`. Idempotent."""
        spec = json.loads(TEMPLATE_PATH.read_text())
        spec["index_patterns"] = [f"{self.prefix}-*"]
        spec["template"]["aliases"] = {self.prefix: {}}
        with translate_errors():
            self.client.indices.put_index_template(name=self.prefix, **spec)

    def write(self, events: Sequence[Event]) -> list[Rejected]:
        """`Sink.write`: bulk-index `events`. The bulk answer refuses documents one by one; a
        request refused whole (400, 413) is bisected down to the events behind it.

        Any document refused for a transient reason (429, 5xx) makes it raise `TransientError`:
        the whole batch is retried, which is harmless because each document is keyed by its
        event_id.
        """
        return isolate_poison(events, self._bulk)

    def _bulk(self, events: Sequence[Event]) -> list[Rejected]:
        with translate_errors():
            response = self.client.bulk(operations=bulk_body(self.prefix, events))  # type: ignore[arg-type]
        if not response.get("errors"):
            return []
        rejected: list[Rejected] = []
        transient = 0
        for event, item in zip(events, response["items"]):
            result = next(iter(item.values()))
            status = result.get("status", 500)
            if status < 300:
                continue
            if status == 429 or status >= 500:
                transient += 1
            else:
                error = result.get("error") or {}
                rejected.append(Rejected(event, f"elasticsearch {status}: {error.get('type')}: {error.get('reason')}"))
        if transient:
            raise TransientError(f"elasticsearch refused {transient} documents for now (429/5xx)")
        return rejected

    def install_templates(self, **indices: str) -> None:
        """The event template, and those of the indices beat feeds (alerts, deadletters, stations).

        `indices` renames them, e.g. `alerts="my-alerts"`; by default each is `charging-<name>`.
        """
        self.install_template()
        for name in ("alerts", "deadletters", "stations"):
            index = indices.get(name, f"charging-{name}")
            spec = json.loads(TEMPLATE_PATH.with_name(f"{name}_template.json").read_text())
            spec["index_patterns"] = [f"{index}*"]
            spec.pop("_meta", None)
            with translate_errors():
                self.client.indices.put_index_template(name=index, **spec)

    def refresh(self) -> None:
        with translate_errors():
            self.client.indices.refresh(index=f"{self.prefix}*")

    def count(self, query: dict[str, Any] | None = None) -> int:
        with translate_errors():
            body = {"query": query} if query else {}
            return int(self.client.count(index=f"{self.prefix}*", **body)["count"])
