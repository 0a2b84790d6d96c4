"""One beat at a time: a PostgreSQL advisory lock held for the life of the process.

A second `evmonitor beat` waits on standby until the first one's session ends. If the lock's
connection is lost (PostgreSQL restarted), the holder reconnects and takes the lock back; if
another beat got it meanwhile, this one exits, so two schedulers never run side by side for
longer than one check interval. The jobs are idempotent anyway; the lock keeps them from being
queued twice.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

import sqlalchemy as sa

__all__ = ["LeaderLock"]

log = logging.getLogger("evmonitor.leader")


class LeaderLock:
    def __init__(self, url: str, key: int, *, check_interval_s: float = 5.0) -> None:
        self.url = url
        self.key = key
        self.check_interval_s = check_interval_s
        self._engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 5})
        self._conn: sa.Connection | None = None

    def _try(self) -> bool:
        try:
            conn = self._engine.connect()
            got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar_one()
        except sa.exc.SQLAlchemyError as exc:
            log.warning("leader lock: PostgreSQL unreachable (%s)", str(exc).splitlines()[0])
            return False
        if got:
            self._conn = conn
            return True
        conn.close()
        return False

    def acquire(self, stop: threading.Event | None = None, say: Callable[[str], None] = log.info) -> bool:
        """Block until this process holds the lock (True) or `stop` is set (False)."""
        stop = stop or threading.Event()
        announced = False
        while not stop.is_set():
            if self._try():
                return True
            if not announced:
                say("another instance holds the lock; standing by")
                announced = True
            stop.wait(self.check_interval_s)
        return False

    def alive(self) -> bool:
        """True while our lock connection still answers."""
        try:
            assert self._conn is not None
            self._conn.execute(sa.text("SELECT 1"))
            return True
        except (AssertionError, sa.exc.SQLAlchemyError):
            return False

    def watch(self, on_lost: Callable[[], None] = lambda: os._exit(3)) -> threading.Thread:
        """Check the lock in the background; re-take it after a connection loss, or call `on_lost`."""

        def loop() -> None:
            while True:
                threading.Event().wait(self.check_interval_s)
                if self.alive():
                    continue
                log.warning("leader lock: connection lost; taking the lock back")
                self._conn = None
                while self._conn is None:
                    if self._try():
                        log.info("leader lock: held again")
                        break
                    if self._lock_taken_by_other():
                        log.error("leader lock: another instance took over; exiting")
                        on_lost()
                        return
                    threading.Event().wait(self.check_interval_s)

        thread = threading.Thread(target=loop, daemon=True, name="leader-lock")
        thread.start()
        return thread

    def _lock_taken_by_other(self) -> bool:
        try:
            with self._engine.connect() as conn:
                held = conn.execute(
                    # objsubid 1: a bigint key (2: the persist path's two-int row locks, evmonitor.storage.marks)
                    sa.text("SELECT count(*) FROM pg_locks "
                            "WHERE locktype = 'advisory' AND objid = :k AND objsubid = 1 AND granted"),
                    {"k": self.key & 0xFFFFFFFF},
                ).scalar_one()
            return held > 0
        except sa.exc.SQLAlchemyError:
            return False

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._conn.close()
            except sa.exc.SQLAlchemyError:
                pass
            self._conn = None
