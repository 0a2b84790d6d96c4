"""Two checkouts' backlog drains, interleaved: the A/B of a change to the pipeline's code.

    git worktree add /tmp/base main            # the code to compare against
    .venv/bin/python -m bench.ab /tmp/base . [--rounds 3] [--events 300000] [--out ab.jsonl]

Each round drains the same backlog (`drain_persist`: what `evmonitor up` runs, two persist
processes and one bridge, on a fresh sandbox; see `bench.drain`) through the first checkout, then
through the second. Every drain runs in a child interpreter whose working directory and
PYTHONPATH are that checkout: the sandbox starts `python -m evmonitor ...` in the working
directory, and `-m` imports from there first, so PYTHONPATH alone would run the same code twice.

Prints one line per drain (events/s, from the first fetch, CPU-µs per event of each process,
how busy the machine was and how much of it other processes took) and, per round, the second's
figures less the first's. Compare within a round: on a shared machine the speed of the two
cores drifts from one minute to the next by more than most changes are worth.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["main"]

_ONE = """
import json, sys, tempfile
from pathlib import Path
import evmonitor
from bench.drain import DRAIN_SCENARIOS, run_drain
from bench.workload import plan_workload
events, seed, admin_url = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
result = run_drain(DRAIN_SCENARIOS[0], plan_workload("drain", events=events, seed=seed),
                   workdir=Path(tempfile.mkdtemp(prefix="evmonitor-ab-")), admin_url=admin_url,
                   say=lambda line: print(line, file=sys.stderr))
print(json.dumps(dict(code=str(Path(evmonitor.__file__).parent.parent), events=result.events,
                      seconds=result.seconds, events_per_s=result.events_per_s,
                      after_first_fetch=result.events_per_s_after_first_fetch,
                      first_fetch_s=result.startup_s.get("first_fetch"), exact=result.exact,
                      cpu_us_per_event=result.cpu_us_per_event, busy=result.machine_busy_fraction,
                      background=result.background_fraction)))
"""


def drain(checkout: Path, events: int, seed: int, admin_url: str) -> dict[str, Any]:
    """One drain of `checkout`'s code, in a child interpreter rooted there."""
    env = dict(os.environ, PYTHONPATH=str(checkout))
    done = subprocess.run([sys.executable, "-c", _ONE, str(events), str(seed), admin_url], cwd=checkout, env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"the drain of {checkout} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if Path(result["code"]).resolve() != checkout.resolve():
        raise SystemExit(f"the drain of {checkout} ran the code of {result['code']}")
    return result


def _line(label: str, r: dict[str, Any]) -> str:
    cpu = r["cpu_us_per_event"]
    ours = "  ".join(f"{name} {value:.1f}" for name, value in cpu.items() if value)
    return (f"{label:4s} {r['events_per_s']:>8,.0f}/s (first fetch {r['first_fetch_s']:.1f}s, then "
            f"{r['after_first_fetch']:,.0f}/s)  CPU-us/event: {ours}  busy {r['busy']:.0%}, others "
            f"{r['background']:.0%}{'' if r['exact'] else '  NOT EXACT'}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("a", type=Path, help="the checkout drained first in each round (the base)")
    parser.add_argument("b", type=Path, help="the checkout drained second (the change)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=300_000, help="the backlog (default 300,000 events)")
    parser.add_argument("--seed", type=int, default=42)
    admin_url = os.environ.get("EVMON_ADMIN_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--admin-url", default=admin_url, help="a PostgreSQL superuser URL (sandboxes' databases)")
    parser.add_argument("--out", type=Path, default=None, help="also append every drain as a JSON line here")
    args = parser.parse_args(argv)
    checkouts = {"a": args.a.resolve(), "b": args.b.resolve()}
    for label, path in checkouts.items():
        if not (path / "evmonitor" / "__init__.py").exists():
            parser.error(f"{label}: {path} is not an evmonitor checkout")
    print(f"a = {checkouts['a']}\nb = {checkouts['b']}\n{args.rounds} rounds of a {args.events:,}-event drain",
          flush=True)  # fmt: skip
    out = args.out.open("a") if args.out else None
    exact = True
    for round_no in range(1, args.rounds + 1):
        results = {}
        for label, path in checkouts.items():
            results[label] = r = drain(path, args.events, args.seed, args.admin_url)
            exact &= bool(r["exact"])
            print(_line(label, r), flush=True)
            if out:
                out.write(json.dumps(dict(r, label=label, round=round_no)) + "\n")
                out.flush()
        a, b = results["a"], results["b"]
        deltas = "  ".join(f"{name} {b['cpu_us_per_event'].get(name, 0) - value:+.1f}"
                           for name, value in a["cpu_us_per_event"].items() if value)  # fmt: skip
        print(f"round {round_no}: b/a {b['events_per_s'] / a['events_per_s']:.2f}x; CPU-us/event b-a: {deltas}",
              flush=True)  # fmt: skip
    if out:
        out.close()
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
