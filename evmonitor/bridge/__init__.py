"""The bridge: Kafka records in, one Celery task per micro-batch per sink out, offsets committed
only once every event before them is in every sink (or dead-lettered).

    batching   micro-batches by size or age
    offsets    which offset may be committed (the commit rule)
    bridge     the loop, against injected I/O (unit-testable)
    wiring     the real I/O: kafka-python consumer, Celery publishing, completion markers
"""

from evmonitor.bridge.batching import Batch, Batcher
from evmonitor.bridge.bridge import Bridge, BridgeHalted, Stats
from evmonitor.bridge.offsets import OffsetTracker
from evmonitor.bridge.wiring import CeleryPublisher, KafkaSource, build_bridge, run_bridge

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
