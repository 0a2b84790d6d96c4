"""Beat's marks are written by the persist path's statements (evmonitor/storage/marks.py), exact under
concurrent writers, and no trigger is left on the hot tables."""

from __future__ import annotations

import random
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from beat.conflicts import hold_conflicts
from beat.rollups import recompute_hours, refresh_rollups
from evmonitor.contract import decode
from evmonitor.storage.postgres import PostgresStore, apply_schema
from tests.factories import encode, make_event

HOT_TABLES = ("charging_stations", "connector_status", "status_events", "charging_sessions", "station_presence")
DAY = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)


def wire(*events: dict) -> list[dict]:
    return [decode(encode(e), received_at=DAY + timedelta(days=1)).to_wire() for e in events]


def at(hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


def triggers(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT tgrelid::regclass::text || '.' || tgname FROM pg_trigger "
            "WHERE NOT tgisinternal AND tgrelid::regclass::text = ANY(:tables)"), {"tables": list(HOT_TABLES)}
        ).scalars().all()  # fmt: skip


def test_no_trigger_is_left_on_the_hot_tables_and_applying_the_schema_drops_the_old_ones(pipeline):
    """A database with the old mark triggers loses them when the schema is applied; none is left."""
    engine = sa.create_engine(pipeline.settings.sqlalchemy_url)
    try:
        with engine.begin() as conn:  # what a database of an earlier version has
            conn.execute(sa.text("CREATE FUNCTION evm_mark_session_hours() RETURNS trigger LANGUAGE plpgsql "
                                 "AS $$ BEGIN RETURN NULL; END $$"))  # fmt: skip
            conn.execute(sa.text("CREATE TRIGGER charging_sessions_mark_update AFTER UPDATE ON charging_sessions "
                                 "FOR EACH STATEMENT EXECUTE FUNCTION evm_mark_session_hours()"))  # fmt: skip
        assert triggers(engine) == ["charging_sessions.charging_sessions_mark_update"]
        apply_schema(engine, pipeline.settings.sql_dir)
        assert triggers(engine) == []
    finally:
        engine.dispose()


def pause_before_commit(engine: sa.Engine, reached: threading.Event, go: threading.Event) -> None:
    """The engine's next transactions stop just before COMMIT until `go` is set."""

    def hold(conn: sa.Connection) -> None:
        reached.set()
        assert go.wait(30), "the test never let this commit go"

    sa.event.listen(engine, "commit", hold)


def wait_until(condition, what: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def test_a_writer_that_waited_on_another_marks_the_hours_the_other_committed(pipeline):
    """Writer B moves a session's end to 13:30 at ST-1; writer A, which shares only that session, closes it at 10:30
    from ST-2 (held). Beat runs between their commits; after A, every hour is exact (A marks B's hours too)."""
    url = pipeline.settings.sqlalchemy_url
    first, store_a, store_b = PostgresStore.connect(url), PostgresStore.connect(url), PostgresStore.connect(url)
    admin = first.engine
    sid = "5e55a7e5-0000-4000-8000-000000000001"
    common = dict(session_id=sid, connector_id=1)
    first.write_events(wire(make_event("session_started", at=at(10, 5), station_id="ST-1", meter_start_wh=0, **common),
                            make_event("session_progress", at=at(10, 10), station_id="ST-1", meter_wh=1_000, **common)))
    refresh_rollups(admin, pipeline.settings, datetime.now(timezone.utc))
    b_reached, b_go, a_reached, a_go = (threading.Event() for _ in range(4))
    pause_before_commit(store_b.engine, b_reached, b_go)
    pause_before_commit(store_a.engine, a_reached, a_go)
    batch_b = wire(make_event("session_progress", at=at(13, 30), station_id="ST-1", meter_wh=2_000, **common))
    batch_a = wire(make_event("session_completed", at=at(10, 30), station_id="ST-2", meter_stop_wh=3_000, **common))
    errors: list[BaseException] = []

    def run(store: PostgresStore, batch: list[dict]) -> None:
        try:
            store.write_events(batch)
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    writer_b = threading.Thread(target=run, args=(store_b, batch_b))
    writer_a = threading.Thread(target=run, args=(store_a, batch_a))
    try:
        writer_b.start()
        wait_until(b_reached.is_set, "writer B wrote its batch")
        writer_a.start()

        def a_waits() -> bool:
            with admin.connect() as conn:
                return conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                            "AND wait_event_type = 'Lock'")).scalar_one() > 0  # fmt: skip

        wait_until(a_waits, "writer A waits for writer B's session")
        b_go.set()
        writer_b.join(30)
        wait_until(a_reached.is_set, "writer A wrote its batch")
        refresh_rollups(admin, pipeline.settings, datetime.now(timezone.utc))  # reads B's marks, sees B's row
        a_go.set()
        writer_a.join(30)
    finally:
        b_go.set()
        a_go.set()
    assert errors == []
    refresh_rollups(admin, pipeline.settings, datetime.now(timezone.utc))
    with admin.begin() as conn:
        held = conn.execute(sa.text("SELECT held_reason FROM charging_sessions WHERE id = :id"), {"id": sid}).scalar()
        every_hour = [(s, at(h)) for s in ("ST-1", "ST-2") for h in range(24)]
        assert recompute_hours(conn, every_hour, datetime.now(timezone.utc)) == (0, 0)  # nothing was left stale
        assert conn.execute(sa.text("SELECT count(*) FROM station_hourly")).scalar_one() == 0
    assert held == "station_mismatch"
    for store in (first, store_a, store_b):
        store.engine.dispose()


def test_a_session_the_conflicts_job_holds_leaves_the_rollups_it_was_counted_in(pipeline):
    """60 kWh in 15 minutes counts until a boot says the station gives 22 kW; the conflicts job then holds the
    session, and its own marks make the next rollup run drop it from the hours it was counted in."""
    store = PostgresStore.connect(pipeline.settings.sqlalchemy_url)
    engine, settings, now = store.engine, pipeline.settings, datetime.now(timezone.utc)
    common = dict(session_id="5e55a7e5-0000-4000-8000-000000000002", station_id="ST-F", connector_id=1)
    store.write_events(wire(
        make_event("session_started", at=at(9, 50), meter_start_wh=0, price_eur_per_kwh=0.5, **common),
        make_event("session_progress", at=at(10, 5), meter_wh=60_000, **common)))  # fmt: skip
    refresh_rollups(engine, settings, now)
    energy = "SELECT coalesce(sum(energy_kwh), 0) FROM station_hourly WHERE station_id = 'ST-F'"
    with engine.connect() as conn:
        assert conn.execute(sa.text(energy)).scalar_one() == 60
    store.write_events(wire(make_event("station_boot", at=at(11), station_id="ST-F", max_power_kw=22.0)))
    refresh_rollups(engine, settings, now)  # the boot's own marks (a new profile) are read before the job holds
    assert hold_conflicts(engine, settings, now)["held"] == 1
    refresh_rollups(engine, settings, now)
    with engine.begin() as conn:
        assert conn.execute(sa.text(energy)).scalar_one() == 0
        assert recompute_hours(conn, [("ST-F", at(h)) for h in range(24)], now) == (0, 0)
    engine.dispose()


def test_two_writers_and_beat_at_once_leave_every_hour_exact(pipeline):
    """Two persist writers whose small batches share sessions (some from two stations, so held), in any order,
    while beat refreshes the rollups and holds conflicts: no error, and after a last run every hour is exact."""
    rnd = random.Random(15)
    url, settings = pipeline.settings.sqlalchemy_url, pipeline.settings
    events = []
    for n in range(150):
        common = dict(session_id=str(uuid.UUID(int=n + 1, version=4)), connector_id=1 + n % 2)
        home, start = f"ST-{n % 3}", at(rnd.randint(0, 18), rnd.randint(0, 59))
        times = sorted(start + timedelta(minutes=rnd.randint(1, 240)) for _ in range(4))
        events += [make_event("session_started", at=start, station_id=home, meter_start_wh=0, **common),
                   *(make_event("session_progress", at=t, meter_wh=1_000 * (i + 1), power_kw=20.0,
                                station_id=home if rnd.random() < 0.9 else f"ST-{(n + 1) % 3}", **common)
                     for i, t in enumerate(times[:3])),
                   make_event("session_completed", at=times[3], station_id=home, meter_stop_wh=5_000, **common)]
    events += [make_event("station_boot", at=at(h), station_id=f"ST-{h % 3}", max_power_kw=rnd.choice([11.0, 50.0]),
                          connector_count=2) for h in range(0, 24, 5)]  # fmt: skip
    rnd.shuffle(events)
    batches = [wire(*events[i : i + 8]) for i in range(0, len(events), 8)]
    stores = [PostgresStore.connect(url), PostgresStore.connect(url)]
    errors: list[BaseException] = []
    done = threading.Event()

    def write(store: PostgresStore, mine: list[list[dict]]) -> None:
        try:
            for batch in mine:
                store.write_events(batch)
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    def beat(engine: sa.Engine) -> None:
        try:
            while not done.is_set():
                refresh_rollups(engine, settings, datetime.now(timezone.utc))
                hold_conflicts(engine, settings, datetime.now(timezone.utc))
        except BaseException as exc:
            errors.append(exc)

    beat_engine = sa.create_engine(url)
    writers = [threading.Thread(target=write, args=(stores[i], batches[i::2])) for i in (0, 1)]
    beater = threading.Thread(target=beat, args=(beat_engine,))
    for thread in (*writers, beater):
        thread.start()
    for thread in writers:
        thread.join(120)
    done.set()
    beater.join(60)
    assert errors == []
    now = datetime.now(timezone.utc)
    hold_conflicts(beat_engine, settings, now)
    refresh_rollups(beat_engine, settings, now)
    with beat_engine.begin() as conn:
        every_hour = [(f"ST-{s}", DAY + timedelta(hours=h)) for s in range(3) for h in range(30)]
        assert recompute_hours(conn, every_hour, now) == (0, 0)
        assert conn.execute(sa.text("SELECT count(*) FROM station_hourly")).scalar_one() > 0
        assert conn.execute(sa.text("SELECT count(*) FROM charging_sessions WHERE held_reason IS NOT NULL")).scalar_one() > 0
    for engine in (beat_engine, *(s.engine for s in stores)):
        engine.dispose()
