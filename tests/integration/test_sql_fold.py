"""The merge rules in SQL (ON CONFLICT) equal the merge rules in Python (evmonitor.fold)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from evmonitor.contract import decode
from evmonitor.fold import fold_events
from evmonitor.storage.postgres import PostgresStore
from tests.factories import encode, make_event, session_events

NOW = datetime.now(timezone.utc).replace(microsecond=0)
COLUMNS = ("station_id", "connector_id", "start_time", "end_time", "meter_start_wh", "meter_max_wh", "meter_stop_wh",
           "stop_reason", "id_tag_hash", "progress_at", "progress_meter_wh", "progress_event_id", "power_kw",
           "soc_percent", "status")  # fmt: skip


def wire(events):
    return [decode(encode(e), received_at=NOW + timedelta(hours=6)).to_wire() for e in events]


def test_any_split_into_batches_in_any_order_gives_the_row_python_folds(pipeline):
    """Random duplication, order and batch cuts: PostgreSQL rows equal fold_events of everything."""
    rnd = random.Random(20261124)
    store = PostgresStore.connect(pipeline.settings.sqlalchemy_url)
    everything = []
    for i in range(40):
        start = NOW - timedelta(minutes=rnd.randint(30, 600))
        readings = sorted(rnd.sample(range(1, 90_000), rnd.randint(1, 6)))
        events = wire(session_events(start=start, meter_start_wh=rnd.randint(0, 10**9), readings=readings,
                                     price=rnd.choice([0.39, 0.555, 0.69, 0.7999]), station_id=f"ST-{i % 7}"))  # fmt: skip
        if rnd.random() < 0.3:  # a second completion, as a buggy charger might send
            events.append(wire([make_event("session_completed", at=start + timedelta(hours=5),
                                           session_id=events[0]["session_id"], station_id=events[0]["station_id"],
                                           meter_stop_wh=events[-1]["meter_stop_wh"] + 5, stop_reason="Remote")])[0])  # fmt: skip
        noisy = events + rnd.choices(events, k=rnd.randint(0, len(events)))
        rnd.shuffle(noisy)
        everything.extend(events)
        cuts = sorted(rnd.sample(range(1, len(noisy)), min(3, len(noisy) - 1)))
        batches = [noisy[a:b] for a, b in zip([0, *cuts], [*cuts, len(noisy)])]
        rnd.shuffle(batches)
        for batch in batches:
            store.write_events(batch)
    expected = fold_events(everything).sessions
    with store.engine.connect() as conn:
        rows = {str(r.id): r for r in conn.exec_driver_sql("SELECT * FROM charging_sessions")}
    assert set(rows) == set(expected)
    for sid, want in expected.items():
        got = rows[sid]
        for col in COLUMNS:
            assert getattr(got, col) == getattr(want, col), (sid, col)
        assert got.energy_delivered_kwh == want.energy_delivered_kwh
        assert got.cost_eur == want.cost_eur
        assert Decimal(str(want.price_eur_per_kwh)) == got.price_eur_per_kwh
    store.engine.dispose()
