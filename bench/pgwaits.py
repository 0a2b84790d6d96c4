"""What PostgreSQL's backends of one database are doing while a scenario runs, sampled.

`WaitSampler` asks `pg_stat_activity` every `interval_s` (in a thread, on its own connection) for
the active client backends of the database and counts their wait event: `CPU` when a backend
waits on nothing (running, or runnable), else `type:event` (`Lock:advisory` is a batch waiting
for another batch's per-station or per-session lock, `IO:WALSync` a commit's flush). The share of
`Lock:*` samples says how much of PostgreSQL's time concurrent batches spend queued behind each
other rather than working: what caps a second persist worker when batches share stations.

Every 50 ms: the sampler is a process on the machine it measures. Every 10 ms, it took 3.6% of a
core in the harness and ~4% in its PostgreSQL backend, out of a CPU-bound drain; every 50 ms,
1.0% and ~0.5% (measured: the sampler alone for 10 s against an idle database), and
a 35 s drain still gets ~700 samples.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import sqlalchemy as sa

__all__ = ["WaitSampler"]

_QUERY = sa.text(
    "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity "
    "WHERE datname = :db AND backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()"
)


class WaitSampler:
    def __init__(self, admin_url: str, database: str, interval_s: float = 0.05) -> None:
        self.engine = sa.create_engine(admin_url, connect_args={"connect_timeout": 5}, poolclass=sa.pool.NullPool)
        self.database, self.interval_s = database, interval_s
        self.counts: Counter[str] = Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            while not self._stop.wait(self.interval_s):  # the sampling period, not synchronisation
                self.counts.update(row[0] for row in conn.execute(_QUERY, {"db": self.database}))
                self.samples += 1

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pg-waits", daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, Any]:
        """{samples, active_backends_mean, share: {wait: fraction of active backend samples}, lock_share}."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.engine.dispose()
        active = sum(self.counts.values())
        share = {k: round(v / active, 3) for k, v in self.counts.most_common(8)} if active else {}
        lock = sum(v for k, v in self.counts.items() if k.startswith("Lock:")) / active if active else None
        return {"samples": self.samples, "interval_s": self.interval_s,
                "active_backends_mean": round(active / self.samples, 2) if self.samples else None,
                "share": share, "lock_share": None if lock is None else round(lock, 3)}  # fmt: skip
