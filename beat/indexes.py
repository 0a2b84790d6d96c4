"""The two Elasticsearch indexes beat feeds: `charging-alerts` and `charging-deadletters`.

Each is one concrete index with an explicit mapping (`dynamic: false`: fields not listed here
are kept in `_source` but not indexed), created on first use. Every document has a
deterministic `_id`, so writing it again is harmless.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from elasticsearch import ApiError, Elasticsearch

from evmonitor.errors import TransientError
from evmonitor.storage import search
from evmonitor.storage.search import translate_errors

__all__ = ["ALERTS_MAPPING", "DEADLETTERS_MAPPING", "STATIONS_MAPPING", "bulk", "ensure_index"]

def _mapping(name: str) -> dict[str, Any]:
    """The mapping from the index template that `evmonitor init` installs (one definition)."""
    template = json.loads((Path(search.__file__).with_name(f"{name}_template.json")).read_text())
    return template["template"]["mappings"]


ALERTS_MAPPING: dict[str, Any] = _mapping("alerts")
DEADLETTERS_MAPPING: dict[str, Any] = _mapping("deadletters")
STATIONS_MAPPING: dict[str, Any] = _mapping("stations")


def ensure_index(client: Elasticsearch, name: str, mappings: dict[str, Any]) -> None:
    """Create `name` with `mappings` unless it exists. Safe when two workers race."""
    with translate_errors():
        if client.indices.exists(index=name):
            return
        try:
            client.indices.create(
                index=name, mappings=mappings, settings={"number_of_shards": 1, "number_of_replicas": 0}
            )
        except ApiError as exc:
            if exc.meta.status != 400 or "already_exists" not in str(exc.error):
                raise


def bulk(client: Elasticsearch, operations: Sequence[dict[str, Any]]) -> None:
    """Send a bulk request; raise `TransientError` unless every item landed.

    A delete of a missing document counts as done. Every other refusal is reported as transient
    too: our documents are built by us, so a refusal is a server or mapping problem that the
    next run must retry, not data to drop.
    """
    if not operations:
        return
    with translate_errors():
        response = client.bulk(operations=list(operations))
    if not response.get("errors"):
        return
    failed = []
    for item in response["items"]:
        action, result = next(iter(item.items()))
        status = result.get("status", 500)
        if status < 300 or (action == "delete" and status == 404):
            continue
        failed.append(f"{result.get('_id')}: {status} {(result.get('error') or {}).get('type')}")
    if failed:
        raise TransientError(f"elasticsearch refused {len(failed)} documents, e.g. {failed[0]}")
