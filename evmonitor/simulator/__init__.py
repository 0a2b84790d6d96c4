"""The event simulator: a fleet of chargers in European cities and the events it sends.

Drain mode (`plan_drain`, then `send`) plans a whole window up front, with optional chaos
(bad events, duplicates, reordering), and returns the messages with their exact ground truth.
`send` hands messages to a Kafka producer, the simulator's only I/O.
"""

from evmonitor.simulator.messages import Message
from evmonitor.simulator.plan import Plan, default_window, plan_drain
from evmonitor.simulator.producer import send
from evmonitor.simulator.truth import GroundTruth, SessionTruth

__all__ = ["GroundTruth", "Message", "Plan", "SessionTruth", "default_window", "plan_drain", "send"]
