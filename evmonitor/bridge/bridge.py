"""The bridge: Kafka records in, Celery batch tasks out, offsets committed only when safe.

    poll -> validate -> (rejected) dead-letter record, sent at the poll's end .... done once flushed
                     -> (valid)    micro-batch -> publish to `persist` and `index` -> done once both
                                                                                     sinks marked it
    every commit_interval_s, and at once when the last batch in flight completes with nothing
    batched or waiting (caught up): flush dead letters, commit what OffsetTracker allows

Validation has two paths: `evmonitor.fastpath.FastPath` turns a plainly valid record into its wire
dict in a few microseconds; whatever it is not sure about goes to `evmonitor.contract.validate`
(pydantic), which alone rejects and gives the reason (`Stats.slow_path` counts those records).

Delivery rule (invariant 1): Redis keeps nothing on disk here, so a task in a queue is not safe.
A batch is done only when PostgreSQL holds a completion marker for it from *both* sinks
(`ingest_batches`); until then its offsets stay uncommitted and it is re-published if no marker
appears within `republish_after_s`. A bridge that dies resumes from the committed offsets and
replays; every write downstream is idempotent, so replays cost time, never correctness.

Back-pressure: a closed batch is published only while fewer than `max_inflight_batches` are
unfinished and, with it, they hold at most `max_inflight_events` (it waits in `ready` meanwhile:
the lanes can close several at once); with that many batches or events unfinished or waiting the
bridge pauses its partitions (the group stays alive) and resumes by itself when batches complete.
The events bound what a backlog of full batches holds in memory and in Redis; the batch count
bounds the small batches that close on age.

Event-time watermark: every `watermark_interval_s` the bridge reports, per assigned partition,
whether it has caught up and the greatest event time it has committed (`watermarks`, written to
`pipeline_watermarks`; see `evmonitor.bridge.watermark` and `beat.watermark`).

Everything that does I/O is passed in (`consumer`, `publish`, `completions`, `deadletters`),
so the loop runs against fakes in unit tests and against real services in integration tests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from evmonitor.bridge.batching import Batch, Batcher
from evmonitor.bridge.offsets import OffsetTracker
from evmonitor.bridge.watermark import EventClock, watermark_row
from evmonitor.config import Settings
from evmonitor.contract import Event, Limits, Rejection, validate
from evmonitor.deadletter import DeadLetter, DeadLetters, Source
from evmonitor.errors import EvmonitorError, Reason, TransientError
from evmonitor.fastpath import FastPath
from evmonitor.names import SinkName

__all__ = ["Bridge", "BridgeHalted", "Stats", "check_record"]

log = logging.getLogger("evmonitor.bridge")

TP = tuple[str, int]
Publish = Callable[[SinkName, Batch], None]  # (sink, batch); raises TransientError
Completions = Callable[[list[str]], dict[str, set[str]]]  # batch ids -> sinks done
Forget = Callable[[list[str]], None]
Watermarks = Callable[[list[dict[str, Any]]], None]  # rows of pipeline_watermarks; raises TransientError


class BridgeHalted(EvmonitorError):
    """The bridge stopped on purpose (e.g. the stream is mostly invalid); the message says why."""


@dataclass
class Stats:
    consumed: int = 0
    valid: int = 0
    rejected: Counter = field(default_factory=Counter)
    batches_published: int = 0
    batches_republished: int = 0
    batches_done: int = 0
    commits: int = 0
    slow_path: int = 0  # records the fast path left to the pydantic models (all rejections among them)

    def as_dict(self) -> dict[str, Any]:
        return {
            "consumed": self.consumed,
            "valid": self.valid,
            "rejected": dict(self.rejected),
            "batches_published": self.batches_published,
            "batches_republished": self.batches_republished,
            "batches_done": self.batches_done,
            "commits": self.commits,
            "slow_path": self.slow_path,
        }


def _received_at(record: Any, wall: Callable[[], datetime]) -> datetime:
    ts = getattr(record, "timestamp", None)
    if ts is not None and ts > 0:
        try:
            return datetime.fromtimestamp(ts / 1000, tz=timezone.utc)
        except (OverflowError, ValueError, OSError):
            pass  # a producer may set any CreateTime, also one past year 9999
    return wall()


def check_record(value: bytes | None, received_at: datetime, limits: Limits) -> Event | Rejection:
    """The verdict on one record's value: an event, or a rejection with its reason. Never raises.

    A tombstone (null value) is rejected here, since `validate` only sees bytes. Should validation
    itself fail, the record is dead-lettered as `internal_error` with its bytes, so that one record
    that trips a bug of ours cannot stop the partition behind it (a crash would replay it forever).
    """
    if value is None:
        return Rejection(Reason.EMPTY_VALUE, "a Kafka tombstone: the record has a null value")
    try:
        return validate(value, received_at=received_at, limits=limits)
    except Exception as exc:  # noqa: BLE001 - the last line of defence, logged with its traceback
        log.exception("bridge: validation failed on a record; dead-lettering it as %s", Reason.INTERNAL_ERROR)
        return Rejection(Reason.INTERNAL_ERROR, f"validation failed: {type(exc).__name__}: {str(exc)[:200]}")


class Bridge:
    def __init__(
        self,
        settings: Settings,
        *,
        consumer: Any,
        publish: Publish,
        completions: Completions,
        deadletters: DeadLetters,
        forget: Forget | None = None,
        watermarks: Watermarks | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        self.publish = publish
        self.completions = completions
        self.forget = forget or (lambda ids: None)
        self.watermarks = watermarks
        self.deadletters = deadletters
        self.clock = clock
        self.wall = wall
        self.limits = Limits.from_settings(settings)
        self.fast = FastPath(self.limits)
        self.sinks = tuple(settings.sinks)
        self.batcher = Batcher(settings.batch_max_events, settings.batch_max_ms / 1000, settings.batch_lanes)
        self.tracker: OffsetTracker[TP] = OffsetTracker()
        self.events: EventClock[TP] = EventClock()
        self._caught_up_at: dict[TP, datetime] = {}
        self.inflight: dict[str, Batch] = {}
        # closed batches waiting for room in flight (the lanes can close several at once)
        self.ready: deque[Batch] = deque()
        self.stats = Stats()
        self.paused = False
        self._released: list[str] = []
        self._rejected_at: deque[int] = deque()  # `stats.consumed` at each rejection in the last window
        now = clock()
        self._next_commit = now + settings.commit_interval_s
        self._next_poll_done = now + settings.completion_poll_s
        self._next_log = now + settings.stats_interval_s
        self._next_watermark = now  # at once: a restarted bridge first says it has not caught up

    # --- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event, *, shutdown_timeout_s: float = 15.0) -> None:
        """Run until `stop` is set, then publish what is batched, wait for it and commit."""
        log.info("bridge started: group %s", self.settings.consumer_group)
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.shutdown(timeout_s=shutdown_timeout_s)

    def step(self, poll_timeout_ms: int = 100) -> None:
        records = self.consumer.poll(timeout_ms=poll_timeout_ms, max_records=self.settings.batch_max_events)
        now = self.clock()  # one reading per poll: the records of a poll arrived together
        for tp, run in records.items():
            if run:
                self._handle((tp.topic, tp.partition), run, now)
        self.deadletters.dispatch()  # the poll's dead letters together: Kafka batches them
        self.tick()

    def tick(self) -> None:
        now = self.clock()
        while (due := self.batcher.due(now)) is not None:
            self.ready.append(due)
        while self.ready and self._room_for(self.ready[0]):
            self._publish(self.ready.popleft())
        caught_up = False
        if now >= self._next_poll_done:
            caught_up = self._poll_completions() and self._idle()
            self._republish_overdue()
            self._next_poll_done = now + self.settings.completion_poll_s
        self._apply_backpressure()
        if now >= self._next_commit or caught_up:
            self.commit()
            self._next_commit = now + self.settings.commit_interval_s
        if self.watermarks is not None and now >= self._next_watermark:
            self.report_watermarks()
            self._next_watermark = now + self.settings.watermark_interval_s
        if now >= self._next_log:
            log.info("bridge: %s, in flight %d", self.stats.as_dict(), len(self.inflight))
            self._next_log = now + self.settings.stats_interval_s

    def _handle(self, tp: TP, records: list[Any], now: float) -> None:
        """One partition's records of a poll, in offset order, into its lane's batches.

        The bookkeeping is per run of records, not per record: a batch holds the first offset of
        the run it took (the lowest: later ones cannot lower it), and the run is consumed up to
        the last record handled (also when a rejection halts the bridge half-way).
        """
        lane = tp[1] % self.batcher.lanes
        fast, stats, batcher, ready = self.fast, self.stats, self.batcher, self.ready
        max_events = batcher.max_events
        times = self.events.queue(tp)
        batch: Batch | None = None
        last, valid = None, 0
        try:
            for record in records:
                stats.consumed += 1
                value = record.value
                accepted = None if value is None else fast(value, record.timestamp)
                if accepted is None:  # the pydantic path decides, and gives the reason of a rejection
                    stats.slow_path += 1
                    received_at = _received_at(record, self.wall)
                    result = check_record(value, received_at, self.limits)
                    if isinstance(result, Rejection):
                        self._reject(tp, record, b"" if value is None else value, received_at, result)
                        last = record.offset
                        continue
                    accepted = result.to_wire(), result.timestamp
                if batch is None:
                    batch = batcher.open(now, lane)
                    self.tracker.hold(batch.batch_id, tp, record.offset)
                events = batch.events
                events.append(accepted[0])
                times.append((record.offset, accepted[1]))
                last = record.offset
                valid += 1
                if len(events) >= max_events:
                    ready.append(batcher.take(lane))  # published by `tick`, right after this poll, if there is room
                    batch = None
        finally:
            stats.valid += valid
            if last is not None:
                self.tracker.consumed(tp, last)

    def _reject(self, tp: TP, record: Any, raw: bytes, received_at: datetime, rejection: Rejection) -> None:
        self.stats.rejected[str(rejection.reason)] += 1
        letter = DeadLetter(rejection.reason, rejection.detail, raw, Source(tp[0], tp[1], record.offset, record.key),
                            received_at)  # fmt: skip
        self.deadletters.send(letter, reason=rejection.reason, key=record.key)
        # the share of rejections among the last `window` records, once that many were seen: kept
        # as the positions of the rejections, so neither a valid record nor a rejection counts them
        window, seen, rejected_at = self.settings.deadletter_window, self.stats.consumed, self._rejected_at
        rejected_at.append(seen)
        while rejected_at[0] <= seen - window:
            rejected_at.popleft()
        if seen >= window:
            invalid = len(rejected_at) / window
            if invalid > self.settings.deadletter_max_ratio:
                raise BridgeHalted(
                    f"{invalid:.0%} of the last {window} records were invalid (limit "
                    f"{self.settings.deadletter_max_ratio:.0%}): a producer is broken. Fix it, or raise "
                    "EVMON_DEADLETTER_MAX_RATIO; nothing past the last commit is lost."
                )

    # --- batches ----------------------------------------------------------------------------

    def _publish(self, batch: Batch, sinks: Iterable[str] | None = None) -> None:
        self.inflight[batch.batch_id] = batch
        first = batch.publish_count == 0
        try:
            for sink in self.sinks if sinks is None else sinks:
                if sink not in batch.done_sinks:
                    self.publish(sink, batch)
        except TransientError as exc:
            log.warning("bridge: publishing batch %s failed (%s); will retry", batch.batch_id, exc)
            batch.published_at = None
            batch.opened_at = self.clock()  # backoff anchor for the retry
            return
        batch.published_at = self.clock()
        batch.publish_count += 1
        if first:
            self.stats.batches_published += 1
        else:
            self.stats.batches_republished += 1

    def _idle(self) -> bool:
        """Every record consumed so far is done: nothing in flight, waiting or batched."""
        return not self.inflight and not self.ready and not any(b.events for b in self.batcher.open_batches.values())

    def _poll_completions(self) -> int:
        """Ask which batches in flight are complete; returns how many this released."""
        if not self.inflight:
            return 0
        try:
            done = self.completions(list(self.inflight))
        except TransientError as exc:
            log.warning("bridge: cannot read batch completions (%s)", exc)
            return 0
        released = 0
        for batch_id, sinks in done.items():
            batch = self.inflight.get(batch_id)
            if batch is None:
                continue
            batch.done_sinks |= sinks
            if all(s in batch.done_sinks for s in self.sinks):
                del self.inflight[batch_id]
                self.tracker.release(batch_id)
                self._released.append(batch_id)
                self.stats.batches_done += 1
                released += 1
        return released

    def _republish_overdue(self) -> None:
        now = self.clock()
        for batch in list(self.inflight.values()):
            if batch.published_at is None:
                if now - batch.opened_at >= min(1.0 * 2 ** min(batch.publish_count, 5), 30.0):
                    self._publish(batch)
            elif now - batch.published_at >= self.settings.republish_after_s:
                missing = [s for s in self.sinks if s not in batch.done_sinks]
                log.warning("bridge: batch %s not complete in %s after %.0fs; re-publishing", batch.batch_id, missing, now - batch.published_at)
                self._publish(batch, missing)

    def _inflight_events(self) -> int:
        return sum(len(batch) for batch in self.inflight.values())  # at most max_inflight_batches

    def _room_for(self, batch: Batch) -> bool:
        """Whether `batch` may be published now (see Back-pressure); one batch always may."""
        if not self.inflight:
            return True
        return (len(self.inflight) < self.settings.max_inflight_batches
                and self._inflight_events() + len(batch) <= self.settings.max_inflight_events)  # fmt: skip

    def _apply_backpressure(self) -> None:
        events = self._inflight_events() + sum(len(batch) for batch in self.ready)
        full = (len(self.inflight) + len(self.ready) >= self.settings.max_inflight_batches
                or events >= self.settings.max_inflight_events)  # fmt: skip
        if full and not self.paused:
            self.consumer.pause(*self.consumer.assignment())
            self.paused = True
            log.warning("bridge: %d batches (%d events) in flight; pausing fetch until workers catch up",
                        len(self.inflight), events)  # fmt: skip
        elif not full and self.paused:
            self.consumer.resume(*self.consumer.paused())
            self.paused = False
            log.info("bridge: resuming fetch")

    # --- commits ----------------------------------------------------------------------------

    def commit(self, only: Iterable[TP] | None = None) -> dict[TP, int]:
        """Flush dead letters, then commit every offset the tracker allows. Returns what moved."""
        offsets = self.tracker.to_commit()
        if only is not None:
            keep = set(only)
            offsets = {tp: off for tp, off in offsets.items() if tp in keep}
        try:
            self.deadletters.flush()
        except TransientError as exc:
            log.warning("bridge: dead letters not flushed (%s); not committing", exc)
            return {}
        if not offsets:
            return {}
        try:
            self.consumer.commit_offsets(offsets)
        except TransientError as exc:
            log.warning("bridge: commit failed (%s); will retry", exc)
            return {}
        self.tracker.committed(offsets)
        self.events.committed(offsets)
        self.stats.commits += 1
        released, self._released = self._released, []
        try:
            self.forget(released)
        except TransientError:
            pass  # markers of committed batches are only garbage; beat prunes leftovers
        return offsets

    def on_revoked(self, tps: Iterable[TP]) -> None:
        tps = list(tps)
        self.commit(only=tps)
        for tp in tps:
            self.tracker.forget(tp)
            self.events.forget(tp)
            self._caught_up_at.pop(tp, None)

    def report_watermarks(self) -> list[dict[str, Any]]:
        """Write one `pipeline_watermarks` row per assigned partition; return the rows.

        A partition this run has read nothing from is done up to the consumer's position; one it
        has read from, up to its committed offset. A failed write is retried at the next interval.
        """
        progress = getattr(self.consumer, "progress", None)
        if self.watermarks is None or progress is None:
            return []
        observed_at = self.wall()
        rows = []
        for tp, (position, high_water) in sorted(progress().items()):
            mine = self.tracker.progress(tp)
            if mine is None and high_water is None:
                continue  # nothing known yet: the previous row stands
            done, all_done = (position, True) if mine is None else mine
            row = watermark_row(tp, done=done, all_done=all_done, high_water=high_water,
                                event_time=self.events.processed.get(tp), caught_up_at=self._caught_up_at.get(tp),
                                observed_at=observed_at)  # fmt: skip
            if row["caught_up"]:
                self._caught_up_at[tp] = observed_at
            rows.append(row)
        if rows:
            try:
                self.watermarks(rows)
            except TransientError as exc:
                log.warning("bridge: watermarks not written (%s); will retry", exc)
        return rows

    def shutdown(self, timeout_s: float = 15.0) -> None:
        """Stop fetching, publish the open batches, wait up to `timeout_s` for completions, commit."""
        while (batch := self.batcher.take()) is not None:
            self.ready.append(batch)
        while self.ready:
            self._publish(self.ready.popleft())
        deadline = self.clock() + timeout_s
        while self.inflight and self.clock() < deadline:
            self._poll_completions()
            self._republish_overdue()
            if self.inflight:
                time.sleep(self.settings.completion_poll_s)  # waiting on other processes; nothing to poll
        self.commit()
        self.report_watermarks()
        if self.inflight:
            log.warning("bridge: %d batches unfinished at shutdown; they will be replayed", len(self.inflight))
        log.info("bridge stopped: %s", self.stats.as_dict())
