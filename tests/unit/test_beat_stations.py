"""The one-word status of a station on the network map."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from beat.stations import network_status, station_document

NOW = datetime(2026, 11, 24, 12, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    "station, connectors, silent_for, expected",
    [
        ("Available", ["Available", "Available"], timedelta(0), "Available"),
        ("Available", ["Charging", "Available"], timedelta(0), "Occupied"),
        ("Available", ["SuspendedEV"], timedelta(0), "Occupied"),
        ("Available", ["Faulted", "Charging"], timedelta(0), "Faulted"),
        ("Faulted", ["Available"], timedelta(0), "Faulted"),
        ("Available", ["Unavailable", "Unavailable"], timedelta(0), "Unavailable"),
        ("Available", ["Unavailable", "Available"], timedelta(0), "Available"),
        (None, [], timedelta(0), "Available"),
        ("Available", ["Faulted"], 2 * HOUR, "Offline"),
    ],
)
def test_worst_condition_names_the_station(station, connectors, silent_for, expected):
    """Offline beats Faulted beats Unavailable beats Occupied beats Available."""
    assert network_status(station, connectors, NOW - silent_for, NOW, HOUR) == expected


def test_document_carries_location_only_when_known_and_is_the_same_for_the_same_now():
    """A station without a boot has no location; the same inputs give the same document."""
    row = dict(id="ST-1", name="ST-1", operator=None, city=None, latitude=None, longitude=None, max_power_kw=None,
               connector_count=None, price_eur_per_kwh=None, status=None, error_code=None,
               last_seen_at=NOW, connector_statuses=["Charging"])  # fmt: skip
    doc = station_document(row, NOW, HOUR)
    assert "location" not in doc and doc["status"] == "Occupied" and doc["connectors_occupied"] == 1
    assert station_document(dict(row, latitude=52.5, longitude=13.4), NOW, HOUR)["location"] == {"lat": 52.5, "lon": 13.4}
    assert station_document(row, NOW, HOUR) == doc
