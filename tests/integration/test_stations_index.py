"""charging-stations: the network map's index, fed from PostgreSQL by beat."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from beat import runner
from evmonitor.contract import decode
from evmonitor.storage.postgres import PostgresStore
from tests.factories import encode, make_event

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def test_stations_index_shows_each_station_where_it_is_with_its_current_status(pipeline):
    """A faulted, a charging and a silent station appear on the map with the right status."""
    at = NOW - timedelta(minutes=5)
    events = [
        make_event("station_boot", at=at, station_id="ST-F", latitude=48.1, longitude=11.6),
        make_event("station_status", at=at, station_id="ST-F", connector_id=1, status="Faulted", error_code="GroundFailure"),
        make_event("station_boot", at=at, station_id="ST-C", latitude=52.5, longitude=13.4),
        make_event("station_status", at=at, station_id="ST-C", connector_id=2, status="Charging", error_code="NoError"),
        make_event("station_boot", at=NOW - timedelta(hours=3), station_id="ST-S", latitude=53.5, longitude=10.0),
    ]  # fmt: skip
    store = PostgresStore.connect(pipeline.settings.sqlalchemy_url)
    store.write_events([decode(encode(e), received_at=NOW).to_wire() for e in events])
    ctx = runner.Context(pipeline.settings)
    try:
        first = runner.do_stations(ctx, NOW)
        again = runner.do_stations(ctx, NOW)
    finally:
        ctx.close()
    assert first == again == {"indexed": 3}
    pipeline.http("POST", "/charging-stations/_refresh")
    hits = pipeline.http("GET", "/charging-stations/_search?size=10")["hits"]["hits"]
    docs = {h["_id"]: h["_source"] for h in hits}
    assert {k: d["status"] for k, d in docs.items()} == {"ST-F": "Faulted", "ST-C": "Occupied", "ST-S": "Offline"}
    assert docs["ST-F"]["location"] == {"lat": 48.1, "lon": 11.6}
