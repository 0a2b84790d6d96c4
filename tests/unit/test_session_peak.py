"""Peak kW per session (charging_sessions.peak_power_kw): the highest progress reading, whatever the order."""

from __future__ import annotations

import random
from datetime import timedelta

from evmonitor.contract import decode
from evmonitor.fold import complete_rows, fold_columns
from tests.factories import NOW, encode, session_events


def test_peak_power_is_the_highest_progress_reading_in_any_order_and_with_replays():
    """Readings of 7.4, 22.0 and 11.0 kW give a peak of 22.0 kW, shuffled and replayed alike."""
    raw = session_events(readings=[1_000, 2_000, 3_000])
    powers = iter([7.4, 22.0, 11.0])
    for event in raw:
        if event["event_type"] == "session_progress":
            event["power_kw"] = next(powers)
    events = [decode(encode(e), received_at=NOW + timedelta(hours=2)).to_wire() for e in raw]
    noisy = events + events[1:3]
    random.Random(7).shuffle(noisy)
    for batch in (events, noisy):
        row = complete_rows(fold_columns(batch)).sessions.popitem()[1]
        assert row["peak_power_kw"] == 22.0
    assert row["power_kw"] == 11.0  # the latest reading stays the latest, not the peak
