"""`python -m bench`: measure evmonitor on the embedded stack and write the results.

See `python -m bench --help`, bench/runner.py for the sections and BENCHMARKS.md for the
latest figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench.report import markdown, text_tables
from bench.runner import SECTIONS, Options, run, save
from evmonitor.config import REPO_ROOT
from evmonitor.stack.sandbox import DEFAULT_ADMIN_URL

DESCRIPTION = """\
Benchmark evmonitor on the embedded stack (fresh tansu, osmem, Redis and a throw-away
PostgreSQL database per scenario; PostgreSQL itself must be running, as for the tests).

One run measures, in order (minutes: default run / --quick, on a quiet 2-core machine):
  stages     raw ceilings, each alone: Kafka produce/consume, PostgreSQL upsert of the       ~2 / 1
             persist task's rows, bulk indexing of the index task's documents, a Celery
             round trip of an empty batch task
  drain      backlog drain (issue 15): the whole day produced into the topics before the    ~8 / 2
             clock starts, then bridge(s) started; the clock stops when every partition's
             committed offset reaches its high-water mark; reconciled exactly. Persist sink
             and both sinks as `up` runs them (2 persist processes), 1 persist process,
             2 bridges (6 partitions per topic); then the ceilings its ratios divide by, on
             the drained topics and all of the drain's events in the bridge's batches
  paths      end to end, produce -> committed -> reconciled exactly: persist path alone,    ~1.5 / 1
             index path alone, both sinks; with the CPU of every process (/proc)
  bad        the persist path with 10% malformed input on top of the same events, end to   ~1.5 / 1
             end and, clean and bad, as backlog drains (issue 11's ratio without the
             producer, which the bad mix's 250 KB records slow, in the clock)
  baseline   the same through one Celery task per event (batch_max_events=1)              ~0.5 / 0.3
  batch      the persist path at batch sizes 50, 500 and 5,000 (1 and the default 2,000    ~1.5 / 0.7
             come from above)
  scaling    2 worker processes per queue instead of 1                                    ~1 / 0.5
  freshness  p50/p99 delay produce -> PostgreSQL at --fresh-persist-rate (persist sink)   ~1.5 / 0.7
             and produce -> PostgreSQL / searchable at --fresh-rate (both sinks)
  soak       only with --soak MINUTES (that long, plus ~1 minute to plan and drain):
             peak RSS and whether it stays flat; persist sink at 2,000 events/s by default

It prints tables and writes bench/results/<timestamp>.json and .md; the JSON's `ratios` and
`targets` are issue 15's (drain / PostgreSQL's ceiling and / a plain Kafka consumer measured in
the same run, scaling, CPU-µs per event, the five targets with what holds each back). Default
run: about 16 minutes (measured: 26.5 with --profile --soak 10, whose soak took ~10 of them; since
the drain's ceiling writes all of its events); --quick: about 6 (7 on a busy machine); issue 15's
figures alone (--skip paths,bad,baseline,batch,scaling): about 12 / 4.
Timing figures need a quiet machine: the `bg` column says how much CPU other processes took
during each scenario.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="smaller workloads, one run per stage ceiling, an 8 s freshness run (smoke test)")
    parser.add_argument("--soak", type=float, default=0.0, metavar="MINUTES",
                        help="also run a soak of this many minutes and judge memory flatness (issue 15's target: --soak 10; "
                             "the harness holds the planned events, ~2.5 KB each: ~3 GB for 10 minutes at 2,000/s)")  # fmt: skip
    parser.add_argument("--soak-sinks", choices=("persist", "both"), default="persist",
                        help="the soak's sinks (default persist)")  # fmt: skip
    parser.add_argument("--soak-rate", type=float, default=None, metavar="EVENTS_PER_S",
                        help="offered load of the soak (default 2000 for the persist sink, 200 for both: osmem keeps "
                             "~8 KB per document in memory)")  # fmt: skip
    parser.add_argument("--fresh-persist-rate", type=float, default=5000.0, metavar="EVENTS_PER_S",
                        help="offered load of the persist-sink freshness run (default 5000, issue 15's target)")  # fmt: skip
    parser.add_argument("--fresh-rate", type=float, default=1000.0, metavar="EVENTS_PER_S",
                        help="offered load of the both-sinks freshness run (default 1000, below the index ceiling)")  # fmt: skip
    parser.add_argument("--drain-events", type=int, default=0, metavar="N",
                        help="events in the backlog of the drain section (default 600,000, a minute of a 10,000 "
                             "events/s network; --quick: 30,000); the harness holds ~2.5 KB per planned event")  # fmt: skip
    parser.add_argument("--skip", default="", metavar="SECTIONS",
                        help=f"comma-separated sections to leave out: {', '.join(SECTIONS)}")  # fmt: skip
    parser.add_argument("--profile", action="store_true",
                        help="also run the persist path under py-spy (bridge and worker) and list the busiest functions")  # fmt: skip
    parser.add_argument("--seed", type=int, default=1, help="simulator seed of the workloads")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results", help="where results go")
    parser.add_argument("--admin-url", default=os.environ.get("EVMON_TEST_ADMIN_DATABASE_URL", DEFAULT_ADMIN_URL),
                        help="superuser URL of the PostgreSQL server for throw-away databases "
                             "(default: EVMON_TEST_ADMIN_DATABASE_URL or the local postgres user)")  # fmt: skip
    parser.add_argument("--workdir", type=Path, help="where sandboxes keep logs (default: a new temp directory)")
    parser.add_argument("--report", type=Path, metavar="JSON", help="only render the tables of a saved results file")
    args = parser.parse_args(argv)

    if args.report:
        results = json.loads(args.report.read_text())
        print(text_tables(results))
        return 0
    skip = tuple(s.strip() for s in args.skip.split(",") if s.strip())
    unknown = set(skip) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    opts = Options(quick=args.quick, soak_minutes=args.soak, soak_rate=args.soak_rate, soak_sinks=args.soak_sinks,
                   fresh_rate=args.fresh_rate, fresh_persist_rate=args.fresh_persist_rate, skip=skip,
                   profile=args.profile, admin_url=args.admin_url, seed=args.seed, workdir=args.workdir,
                   drain_events=args.drain_events)  # fmt: skip
    results = run(opts, say=lambda line: print(line, flush=True))
    summary = markdown(results)
    json_path, md_path = save(results, args.out, summary)
    print()
    print(text_tables(results))
    print(f"results: {json_path}\nsummary: {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
