"""The bridge: Kafka records in, one Celery task per micro-batch per sink out, offsets committed
only once every event before them is in every sink (or dead-lettered).

    batching   micro-batches by size or age
    offsets    which offset may be committed (the commit rule)
    bridge     the loop, against injected I/O (unit-testable)
    joining    the consumer's group join, started before the rest is built
    wiring     the real I/O: kafka-python consumer, Celery publishing, completion markers

The names below are imported on first use (PEP 562), not with the package: `evmonitor bridge`
starts its group join (`joining`, which needs only kafka-python) before it imports the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evmonitor.lazy import lazy_names

if TYPE_CHECKING:
    from evmonitor.bridge.batching import Batch, Batcher
    from evmonitor.bridge.bridge import Bridge, BridgeHalted, Stats
    from evmonitor.bridge.offsets import OffsetTracker
    from evmonitor.bridge.wiring import CeleryPublisher, KafkaSource, build_bridge, run_bridge

_LAZY = {
    "Batch": "batching",
    "Batcher": "batching",
    "Bridge": "bridge",
    "BridgeHalted": "bridge",
    "Stats": "bridge",
    "OffsetTracker": "offsets",
    "CeleryPublisher": "wiring",
    "KafkaSource": "wiring",
    "build_bridge": "wiring",
    "run_bridge": "wiring",
}

__all__ = [
    "Batch",
    "Batcher",
    "Bridge",
    "BridgeHalted",
    "CeleryPublisher",
    "KafkaSource",
    "OffsetTracker",
    "Stats",
    "build_bridge",
    "run_bridge",
]


__getattr__ = lazy_names(__name__, _LAZY, globals())
