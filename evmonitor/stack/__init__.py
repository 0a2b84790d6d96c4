"""Run and prove the pipeline: the room above it that nothing in the pipeline imports.

    embedded    the services without Docker: tansu (Kafka API), osmem (Elasticsearch API), Redis,
                embedded PostgreSQL; schema, topics and templates (`init_pipeline`)
    procs       child processes: spawn, wait, stop
    unprivileged
                as root, the embedded PostgreSQL as `nobody`, from a copy of its programs it can read
    supervisor  `evmonitor up / down / status`: the embedded stack and the pipeline's processes
    health      `evmonitor status`'s data health: consumer lag, newest event, dead letters, alerts
    simulate    the simulation driver behind `evmonitor simulate` (drain and live mode)
    ocpp_fleet  the same drain run through the OCPP gateway, the fleet as chargers (`--via ocpp`)
    reconcile   what the stores hold against the simulator's ground truth
    demo        `evmonitor demo`: up, simulate, drain, reconcile, print the table
    sandbox     a throw-away stack on free ports and a fresh database (tests, chaos, bench)
    faultproxy  a TCP proxy that cuts a service off (refuse + reset) and restores it
    chaos       `evmonitor chaos`: the fault matrix
"""

from evmonitor.stack.chaos import CellResult, run_matrix
from evmonitor.stack.demo import run_demo
from evmonitor.stack.faultproxy import FaultProxy
from evmonitor.stack.health import data_health
from evmonitor.stack.reconcile import SentOffsets, compare, observe, wait_drained
from evmonitor.stack.sandbox import Sandbox
from evmonitor.stack.simulate import RecordingProducer, run_drain, run_live_until_stopped
from evmonitor.stack.supervisor import Stack

__all__ = [
    "CellResult",
    "FaultProxy",
    "RecordingProducer",
    "Sandbox",
    "SentOffsets",
    "Stack",
    "compare",
    "data_health",
    "observe",
    "run_demo",
    "run_drain",
    "run_live_until_stopped",
    "run_matrix",
    "wait_drained",
]
