"""The moment beat judges by: the pipeline's event-time watermark, not the wall clock.

Stale sessions, offline stations and open outages are judged "as of" a moment. Judged at the
wall clock, a pipeline catching up a backlog would call every station whose heartbeats are still
in Kafka offline. So the judgments of `mark_stale_sessions`, `track_faults`, `track_outages` and
`index_stations` (the map's Offline), and the alert refresh of `daily_report` (when beat runs them
live, without an explicit `now`) use

    watermark = min(wall clock, min over partitions p of done(p))

    done(p) = observed_at(p)   if p had caught up when the bridge last wrote its row
                               (committed offset == the partition's high-water mark, nothing
                               in flight): everything produced until then is processed
            = max(event_time(p), caught_up_at(p))   otherwise: the greatest event time the
                               bridge's current run has committed (a record counts once it is in
                               every sink), or the last moment this run saw p caught up, if later
                               (a quiet partition that just received a record stays near now)
            = unknown          if neither is known: a bridge that just started on a backlog

over the rows of `pipeline_watermarks` (written by the bridge every EVMON_WATERMARK_INTERVAL_S,
see `evmonitor.bridge.watermark`). Consequences, on purpose:

* a caught-up pipeline is judged a few seconds behind the wall clock (the row's age);
* a bridge that stopped or died leaves its rows as they were: judgments stop at the moment it was
  last known to be caught up (or at what it had processed), so a stopped pipeline raises no
  offline alerts (the pipeline-health checks are for that);
* if any partition is unknown (a bridge that just started on a backlog), judging waits: the jobs
  skip the run and say so;
* no rows at all (no bridge has ever run against this database): the wall clock.

A partition that no longer exists keeps its row and holds the watermark back; delete it
(`DELETE FROM pipeline_watermarks WHERE topic = ... AND kafka_partition = ...`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from evmonitor.storage.postgres import translate_errors

__all__ = ["PartitionMark", "judgment_time", "read_marks", "watermark"]


@dataclass(frozen=True, slots=True)
class PartitionMark:
    topic: str
    partition: int
    caught_up: bool
    event_time: datetime | None
    observed_at: datetime
    caught_up_at: datetime | None = None


def watermark(marks: Iterable[PartitionMark], wall: datetime) -> datetime | None:
    """The rule of the module docstring; None when some partition is unknown."""
    done = []
    for mark in marks:
        if mark.caught_up:
            done.append(mark.observed_at)
        else:
            known = [t for t in (mark.event_time, mark.caught_up_at) if t is not None]
            if not known:
                return None
            done.append(max(known))
    return min([wall, *done])


def read_marks(engine: sa.Engine) -> list[PartitionMark]:
    query = sa.text("SELECT topic, kafka_partition, caught_up, event_time, observed_at, caught_up_at "
                    "FROM pipeline_watermarks")
    with translate_errors(), engine.connect() as conn:
        return [PartitionMark(r.topic, r.kafka_partition, r.caught_up, r.event_time, r.observed_at, r.caught_up_at)
                for r in conn.execute(query)]  # fmt: skip


def judgment_time(engine: sa.Engine, wall: datetime) -> datetime | None:
    """The watermark of the pipeline writing to `engine`, as of `wall` (None: wait)."""
    return watermark(read_marks(engine), wall)
