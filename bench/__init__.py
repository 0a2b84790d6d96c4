"""evmonitor's benchmark harness: `python -m bench` (see bench/__main__.py and BENCHMARKS.md).

Speed lives here, never in timed test assertions: the harness runs the pipeline on throw-away
sandboxes, measures each stage alone and the whole end to end, and reports ratios, per-event
CPU, freshness and memory.
"""

from bench.headline import Target, headline, targets
from bench.runner import SECTIONS, Options, run
from bench.stats import flatness, median, percentile, rate, ratio

__all__ = ["SECTIONS", "Options", "Target", "flatness", "headline", "median", "percentile", "rate", "ratio", "run",
           "targets"]
