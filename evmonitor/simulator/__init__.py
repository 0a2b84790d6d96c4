"""The event simulator: a fleet of chargers in European cities, in drain mode or live.

Drain mode (`plan_drain`, then `send`) plans a whole window up front, with optional chaos
(bad events, duplicates, reordering), and returns the messages with their exact ground truth.
Live mode (`run_live`) runs the same fleet against the wall clock until stopped and returns
the truth of what it sent. Both talk to Kafka only through `send`'s producer argument.
"""

from evmonitor.simulator.live import run_live
from evmonitor.simulator.messages import Message
from evmonitor.simulator.plan import Plan, default_window, plan_drain
from evmonitor.simulator.producer import send
from evmonitor.simulator.truth import GroundTruth, SessionTruth

__all__ = ["GroundTruth", "Message", "Plan", "SessionTruth", "default_window", "plan_drain", "run_live", "send"]
