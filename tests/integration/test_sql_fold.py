"""The merge rules in SQL (ON CONFLICT) equal the merge rules in Python (evmonitor.fold)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import sqlalchemy as sa

from evmonitor.contract import decode
from evmonitor.fold import PRESENCE, SESSIONS, TABLES, Merge, SessionStatus, complete_rows, fold_columns, held_reason
from evmonitor.storage.postgres import PostgresStore
from tests.factories import encode, make_event, session_events, session_money

NOW = datetime.now(timezone.utc).replace(microsecond=0)
STATUSES = ("Available", "Charging", "Faulted", "Unavailable")


def wire(events):
    return [decode(encode(e), received_at=NOW + timedelta(hours=6)).to_wire() for e in events]


def station_noise(rnd: random.Random, station_id: str) -> list[dict]:
    """Boots, status changes and heartbeats of one station, some at the same instant."""
    at = [NOW - timedelta(minutes=rnd.randint(1, 600)) for _ in range(8)]
    events = [make_event("station_boot", at=rnd.choice(at), station_id=station_id, name=f"{station_id} v{i}",
                         firmware_version=rnd.choice([None, "1.0", "2.0"]))
              for i in range(rnd.randint(0, 2))]  # fmt: skip
    for _ in range(rnd.randint(1, 6)):
        events.append(make_event("station_status", at=rnd.choice(at), station_id=station_id,
                                 connector_id=rnd.randint(0, 2), status=rnd.choice(STATUSES), error_code="NoError",
                                 heartbeat=rnd.random() < 0.3, info=rnd.choice([None, "note"])))  # fmt: skip
    return wire([{k: v for k, v in e.items() if v is not None} for e in events])


def disagreeing(rnd: random.Random, started: dict) -> dict:
    """An event of `started`'s session from another station or connector, with another start
    meter, or with a reading or stop below its start."""
    common = dict(session_id=started["session_id"], station_id=started["station_id"],
                  connector_id=started["connector_id"], at=NOW - timedelta(minutes=rnd.randint(1, 600)))  # fmt: skip
    meter = started["meter_start_wh"]
    return rnd.choice([
        lambda: make_event("session_progress", **{**common, "station_id": rnd.choice(["ST-0", "ST-9", "A"])},
                           meter_wh=meter + 5),
        lambda: make_event("session_progress", **{**common, "connector_id": rnd.choice([2, 7])}, meter_wh=meter),
        lambda: make_event("session_started", **common, meter_start_wh=meter + rnd.choice([-1, 1, 1000])),
        lambda: make_event("session_progress", **common, meter_wh=max(0, meter - rnd.randint(1, 5000))),
        lambda: make_event("session_completed", **common, meter_stop_wh=max(0, meter - 1), stop_reason="Other"),
    ])()  # fmt: skip


def db_rows(store: PostgresStore, table) -> dict:
    key = table.key
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(store.tables[table.name])).mappings().all()
    return {tuple(str(r[c]) if c in ("id", "event_id") else r[c] for c in key): r for r in rows}


def test_any_split_into_batches_in_any_order_gives_the_rows_python_folds(pipeline):
    """Random duplication, order and batch cuts: PostgreSQL rows of every table equal the fold of everything."""
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
        if i % 4 == 0:
            events += station_noise(rnd, f"ST-{i % 9}")
        if i % 3 == 0:  # a producer's mistake: one event that disagrees with the session
            events += wire([disagreeing(rnd, events[0])])
        noisy = events + rnd.choices(events, k=rnd.randint(0, len(events)))
        rnd.shuffle(noisy)
        everything.extend(events)
        cuts = sorted(rnd.sample(range(1, len(noisy)), min(3, len(noisy) - 1)))
        batches = [noisy[a:b] for a, b in zip([0, *cuts], [*cuts, len(noisy)])]
        rnd.shuffle(batches)
        for batch in batches:
            store.write_events(batch)
    expected = complete_rows(fold_columns(everything))
    for table in TABLES:
        want = {k if isinstance(k, tuple) else (k,): row for k, row in expected.table(table).items()}
        if table is PRESENCE:  # the fold keeps these times as fixed-width UTC text (`STAMP`)
            want = {(s, datetime.fromisoformat(m)): {c: datetime.fromisoformat(v) if c != "station_id" else v
                                                     for c, v in row.items()} for (s, m), row in want.items()}
        got = db_rows(store, table)
        assert set(got) == set(want), table.name
        for key, row in want.items():
            for column in table.written():
                value = got[key][column]
                value = str(value) if column in ("id", "event_id") and value is not None else value
                if column == "price_eur_per_kwh" and value is not None:
                    assert value == Decimal(str(row[column])), (table.name, key, column)
                else:
                    assert value == row.get(column), (table.name, key, column)
    sessions = db_rows(store, SESSIONS)
    for sid, row in expected.sessions.items():
        assert (sessions[(sid,)]["energy_delivered_kwh"], sessions[(sid,)]["cost_eur"]) == session_money(row)
    assert any(r["status"] == "completed" for r in sessions.values())
    assert any(r["name"] != r["id"] for r in db_rows(store, TABLES[0]).values())
    held = {sid for sid, row in expected.sessions.items() if held_reason(row) is not None}
    assert len(held) >= 10
    for sid, row in expected.sessions.items():
        assert sessions[(sid,)]["held_reason"] == held_reason(row), sid
    # the station's max power, as beat joins it: the same rule in SQL and in Python
    limits = {sid: rnd.choice([None, 3.7, 11.0, 50.0, 350.0]) for sid in expected.sessions}
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE charging_sessions SET power_limit_kw = :kw WHERE id = :id"),
                     [{"id": sid, "kw": kw} for sid, kw in limits.items()])  # fmt: skip
    sessions = db_rows(store, SESSIONS)
    reasons = set()
    for sid, row in expected.sessions.items():
        row = {**row, "power_limit_kw": limits[sid]}
        reasons.add(held_reason(row))
        got = sessions[(sid,)]
        assert (got["held_reason"], got["energy_delivered_kwh"], got["cost_eur"]) == (
            held_reason(row), *session_money(row)), sid
    assert {*reasons} >= {None, "exceeds_max_power", "station_mismatch", "meter_start_mismatch"}
    store.engine.dispose()


def test_a_stale_session_that_speaks_again_is_active_and_a_completed_one_stays_completed(pipeline):
    """Beat's `stale` gives way to a newer event, not to a replay; completion sticks over both."""
    store = PostgresStore.connect(pipeline.settings.sqlalchemy_url)
    started, *progress, completed = wire(session_events(start=NOW - timedelta(hours=2), readings=[100, 200]))
    store.write_events([started, progress[0]])
    sid = started["session_id"]
    status = lambda: store.engine.connect().execute(  # noqa: E731
        sa.text("SELECT status FROM charging_sessions WHERE id = :s"), {"s": sid}).scalar_one()  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE charging_sessions SET status = 'stale' WHERE id = :s"), {"s": sid})
    store.write_events([progress[0], started])  # replays: nothing newer, still stale
    assert status() == SessionStatus.STALE
    store.write_events([progress[1]])
    assert status() == SessionStatus.ACTIVE
    store.write_events([completed])
    assert status() == SessionStatus.COMPLETED
    store.write_events([progress[1], started])
    assert status() == SessionStatus.COMPLETED
    store.engine.dispose()


def test_every_column_of_the_persisted_tables_has_exactly_one_rule(pipeline):
    """A column added to a table the persist path writes fails here until it has a merge rule."""
    inspector = sa.inspect(sa.create_engine(pipeline.settings.sqlalchemy_url))
    for table in TABLES:
        columns = inspector.get_columns(table.name)
        assert sorted(c["name"] for c in columns) == sorted(table.columns), table.name
        generated = {c["name"] for c in columns if c.get("computed")}
        assert generated == {c for c, r in table.columns.items() if r.merge is Merge.GENERATED}, table.name


def test_late_presence_marks_its_station_and_a_punctual_event_does_not(pipeline):
    """The persist path's presence marks: a new minute, a minute heard earlier than known, or later in a minute
    that is not the station's latest mark the station for the faults job; later in its latest minute does not."""
    store = PostgresStore.connect(pipeline.settings.sqlalchemy_url)
    base = NOW.replace(second=0) - timedelta(hours=3)

    def heard(*seconds: int) -> list:
        store.write_events(wire([make_event("station_status", at=base + timedelta(seconds=s), station_id="PM-1",
                                            connector_id=0, status="Available", error_code="NoError", heartbeat=True)
                                 for s in seconds]))  # fmt: skip
        with store.engine.begin() as conn:
            return conn.execute(sa.text("DELETE FROM presence_marks RETURNING since")).scalars().all()

    assert heard(30, 3630) == [base]  # two new minutes, one statement: one mark from the earliest
    assert heard(3650) == []  # later in the latest minute: punctual
    assert heard(50) == [base]  # later in an old minute: the silence after it is shorter
    assert heard(3610) == [base + timedelta(hours=1)]  # earlier in a minute: the silence before it is shorter
    assert heard(3610, 40) == []  # nothing new
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT minute, first_ts, last_ts FROM station_presence ORDER BY minute")).all()
    hour = timedelta(hours=1)
    assert [tuple(r) for r in rows] == [(base, base + timedelta(seconds=30), base + timedelta(seconds=50)),
                                        (base + hour, base + hour + timedelta(seconds=10), base + hour + timedelta(seconds=50))]  # fmt: skip
    store.engine.dispose()
