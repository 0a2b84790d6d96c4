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

One run measures, in order:
  stages     raw ceilings, each alone: Kafka produce/consume, PostgreSQL upsert of the
             persist task's rows, bulk indexing of the index task's documents, a Celery
             round trip of an empty batch task
  paths      end to end, produce -> committed -> reconciled exactly: persist path alone,
             index path alone, both sinks; with the CPU of every process (/proc)
  baseline   the same through one Celery task per event (batch_max_events=1)
  batch      the persist path at batch sizes 50 and 5,000 (1 and 500 come from above)
  scaling    2 worker processes per queue instead of 1
  freshness  p50/p99 delay from produce to PostgreSQL and to searchable at a steady load
  soak       only with --soak MINUTES: peak RSS and whether it stays flat

It prints tables and writes bench/results/<timestamp>.json and .md. Default run: about
9 minutes (plus the soak); --quick: about 3.5 minutes. Timing figures need a quiet machine: the `bg`
column says how much CPU other processes took during each scenario.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="smaller workloads, one run per stage ceiling, an 8 s freshness run (smoke test)")
    parser.add_argument("--soak", type=float, default=0.0, metavar="MINUTES",
                        help="also run a soak of this many minutes (both sinks) and judge memory flatness")  # fmt: skip
    parser.add_argument("--soak-rate", type=float, default=200.0, metavar="EVENTS_PER_S",
                        help="offered load of the soak (default 200; osmem keeps ~8 KB per document in memory)")  # fmt: skip
    parser.add_argument("--fresh-rate", type=float, default=1000.0, metavar="EVENTS_PER_S",
                        help="offered load of the freshness run (default 1000, below the index ceiling)")  # fmt: skip
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
    opts = Options(quick=args.quick, soak_minutes=args.soak, soak_rate=args.soak_rate, fresh_rate=args.fresh_rate,
                   skip=skip, profile=args.profile, admin_url=args.admin_url, seed=args.seed, workdir=args.workdir)  # fmt: skip
    results = run(opts, say=lambda line: print(line, flush=True))
    summary = markdown(results)
    json_path, md_path = save(results, args.out, summary)
    print()
    print(text_tables(results))
    print(f"results: {json_path}\nsummary: {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
