"""The simulated fleet: charging stations in real European cities, run by fictional operators.

A fleet is a pure function of (seed, size): station ids, names, places, hardware and prices
come out the same for a given seed, so a run can be reproduced and its ground truth checked.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from functools import cache

from faker import Faker

__all__ = ["CITIES", "FAULTS", "OPERATORS", "POWER_CLASSES", "City", "PowerClass", "Station", "build_fleet"]


@dataclass(frozen=True, slots=True)
class City:
    country: str  # ISO 3166-1 alpha-2, the first part of a station id
    code: str  # three letters, the second part of a station id
    name: str
    latitude: float
    longitude: float
    locale: str  # Faker locale for street names
    weight: float  # share of the fleet, roughly by size and EV adoption


CITIES: tuple[City, ...] = (
    City("DE", "BER", "Berlin", 52.5200, 13.4050, "de_DE", 5),
    City("DE", "HAM", "Hamburg", 53.5511, 9.9937, "de_DE", 3),
    City("DE", "MUC", "München", 48.1351, 11.5820, "de_DE", 3),
    City("DE", "CGN", "Köln", 50.9375, 6.9603, "de_DE", 2),
    City("DE", "FRA", "Frankfurt am Main", 50.1109, 8.6821, "de_DE", 2),
    City("DE", "STR", "Stuttgart", 48.7758, 9.1829, "de_DE", 2),
    City("DE", "DUS", "Düsseldorf", 51.2277, 6.7735, "de_DE", 1.5),
    City("DE", "LEJ", "Leipzig", 51.3397, 12.3731, "de_DE", 1),
    City("DE", "NUE", "Nürnberg", 49.4521, 11.0767, "de_DE", 1),
    City("FR", "PAR", "Paris", 48.8566, 2.3522, "fr_FR", 5),
    City("FR", "LYS", "Lyon", 45.7640, 4.8357, "fr_FR", 2),
    City("FR", "MRS", "Marseille", 43.2965, 5.3698, "fr_FR", 1.5),
    City("FR", "TLS", "Toulouse", 43.6047, 1.4442, "fr_FR", 1),
    City("FR", "LIL", "Lille", 50.6292, 3.0573, "fr_FR", 1),
    City("FR", "NTE", "Nantes", 47.2184, -1.5536, "fr_FR", 1),
    City("NL", "AMS", "Amsterdam", 52.3676, 4.9041, "nl_NL", 4),
    City("NL", "RTM", "Rotterdam", 51.9244, 4.4777, "nl_NL", 2),
    City("NL", "UTR", "Utrecht", 52.0907, 5.1214, "nl_NL", 2),
    City("NL", "EIN", "Eindhoven", 51.4416, 5.4697, "nl_NL", 1),
    City("BE", "BRU", "Bruxelles", 50.8503, 4.3517, "nl_BE", 2),
    City("BE", "ANR", "Antwerpen", 51.2194, 4.4025, "nl_BE", 1.5),
    City("AT", "VIE", "Wien", 48.2082, 16.3738, "de_AT", 2),
    City("AT", "GRZ", "Graz", 47.0707, 15.4395, "de_AT", 1),
    City("CH", "ZRH", "Zürich", 47.3769, 8.5417, "de_CH", 2),
    City("CH", "GVA", "Genève", 46.2044, 6.1432, "fr_CH", 1),
    City("IT", "MIL", "Milano", 45.4642, 9.1900, "it_IT", 2.5),
    City("IT", "ROM", "Roma", 41.9028, 12.4964, "it_IT", 2),
    City("IT", "TRN", "Torino", 45.0703, 7.6869, "it_IT", 1),
    City("IT", "BLQ", "Bologna", 44.4949, 11.3426, "it_IT", 1),
    City("ES", "MAD", "Madrid", 40.4168, -3.7038, "es_ES", 2.5),
    City("ES", "BCN", "Barcelona", 41.3874, 2.1686, "es_ES", 2.5),
    City("ES", "VLC", "València", 39.4699, -0.3763, "es_ES", 1),
    City("PT", "LIS", "Lisboa", 38.7223, -9.1393, "pt_PT", 1.5),
    City("PT", "OPO", "Porto", 41.1579, -8.6291, "pt_PT", 1),
    City("DK", "CPH", "København", 55.6761, 12.5683, "da_DK", 2),
    City("DK", "AAR", "Aarhus", 56.1629, 10.2039, "da_DK", 1),
    City("SE", "STO", "Stockholm", 59.3293, 18.0686, "sv_SE", 3),
    City("SE", "GOT", "Göteborg", 57.7089, 11.9746, "sv_SE", 1.5),
    City("NO", "OSL", "Oslo", 59.9139, 10.7522, "no_NO", 4),
    City("NO", "BGO", "Bergen", 60.3913, 5.3221, "no_NO", 2),
    City("FI", "HEL", "Helsinki", 60.1699, 24.9384, "fi_FI", 1.5),
    City("PL", "WAW", "Warszawa", 52.2297, 21.0122, "pl_PL", 1.5),
    City("PL", "KRK", "Kraków", 50.0647, 19.9450, "pl_PL", 1),
    City("CZ", "PRG", "Praha", 50.0755, 14.4378, "cs_CZ", 1.5),
    City("HU", "BUD", "Budapest", 47.4979, 19.0402, "hu_HU", 1),
    City("IE", "DUB", "Dublin", 53.3498, -6.2603, "en_IE", 1.5),
    City("GB", "LON", "London", 51.5074, -0.1278, "en_GB", 5),
    City("GB", "MAN", "Manchester", 53.4808, -2.2426, "en_GB", 1.5),
)


@dataclass(frozen=True, slots=True)
class PowerClass:
    name: str
    current: str  # "AC" or "DC"
    max_power_kw: float
    share: float  # of the fleet
    base_price_cents: int  # per kWh, before the operator's markup
    connectors: tuple[tuple[int, float], ...]  # (count, weight)
    hardware: tuple[tuple[str, str], ...]  # (vendor, model)
    popularity: float  # sessions per connector relative to AC 11 kW

    @property
    def is_dc(self) -> bool:
        return self.current == "DC"


POWER_CLASSES: tuple[PowerClass, ...] = (
    PowerClass("AC11", "AC", 11.0, 0.25, 42, ((2, 1),), (
        ("ABB", "Terra AC W11"), ("Wallbox", "Commander 2"), ("Mennekes", "AMTRON Professional"),
        ("Compleo", "eBOX professional"),
    ), 1.0),
    PowerClass("AC22", "AC", 22.0, 0.35, 45, ((2, 1),), (
        ("Alfen", "Eve Double Pro-line"), ("ABB", "Terra AC W22"), ("EVBox", "BusinessLine"),
        ("KEBA", "KeContact P30"), ("Schneider Electric", "EVlink Pro AC"),
    ), 1.0),
    PowerClass("DC50", "DC", 50.0, 0.12, 59, ((1, 3), (2, 2)), (
        ("ABB", "Terra 54"), ("Tritium", "RTM75"), ("Delta", "DC Wallbox 50"), ("Efacec", "QC45"),
    ), 1.8),
    PowerClass("DC150", "DC", 150.0, 0.18, 69, ((2, 4), (3, 1), (4, 2)), (
        ("Alpitronic", "hypercharger HYC150"), ("ABB", "Terra 184"), ("Kempower", "S-Series 150"),
        ("Tritium", "PKM150"), ("Siemens", "Sicharge D 160"),
    ), 2.5),
    PowerClass("DC350", "DC", 350.0, 0.10, 79, ((2, 2), (4, 3)), (
        ("Alpitronic", "hypercharger HYC400"), ("ABB", "Terra 360"), ("Kempower", "C-Series 360"),
        ("Siemens", "Sicharge D 300"),
    ), 3.0),
)

# Fictional operators: (name, markup in cents per kWh, share of the fleet)
OPERATORS: tuple[tuple[str, int, float], ...] = (
    ("Voltaro Mobility", 0, 4),
    ("Ampwerk", 2, 3),
    ("NordCharge", 3, 3),
    ("Elektrika Netz", -2, 2),
    ("GridLumen", 1, 2),
    ("Ohmline Energy", -3, 2),
    ("EuroVolt Charging", 4, 2),
    ("Stromfeld", -1, 1.5),
    ("Kilowatt Collective", 0, 1),
    ("Chargeo", 2, 1),
)

# OCPP 1.6 error codes a connector reports when it goes Faulted, with a typical `info` text
FAULTS: tuple[tuple[str, str], ...] = (
    ("GroundFailure", "Residual current detected, contactor opened"),
    ("OverCurrentFailure", "Over current on phase L2"),
    ("HighTemperature", "Cable temperature above limit"),
    ("PowerMeterFailure", "Energy meter not responding"),
    ("EVCommunicationError", "PLC communication with vehicle lost"),
    ("ConnectorLockFailure", "Connector lock motor stuck"),
    ("InternalError", "Power module offline"),
    ("PowerSwitchFailure", "Main contactor welded"),
    ("OverVoltage", "Grid voltage above 253 V"),
    ("UnderVoltage", "Grid voltage below 207 V"),
)

_STREET_KINDS = ("Parkhaus", "Plaza", "Retail Park", "Hub", "Depot", "Station")


@dataclass(frozen=True, slots=True)
class Station:
    index: int  # position in the fleet, 0-based
    station_id: str
    name: str
    operator: str
    city: City
    latitude: float
    longitude: float
    power: PowerClass
    connector_count: int
    price_eur_per_kwh: float  # two decimals
    vendor: str
    model: str
    firmware_version: str
    popularity: float  # relative share of arrivals


_FAKER_LOCK = threading.Lock()  # a cached Faker is shared; seeding and drawing must not interleave


@cache
def _faker(locale: str) -> Faker:
    return Faker(locale)


def _pick(rng: random.Random, options: tuple, weights: list[float]):
    return rng.choices(options, weights=weights)[0]


def build_fleet(stations: int, seed: int) -> list[Station]:
    """`stations` stations, identical for identical (stations, seed); ids like `DE-BER-0007`."""
    if stations < 1:
        raise ValueError("a fleet needs at least one station")
    rng = random.Random(f"{seed}:fleet")
    city_weights = [c.weight for c in CITIES]
    class_weights = [p.share for p in POWER_CLASSES]
    operator_weights = [o[2] for o in OPERATORS]
    fleet = []
    for index in range(stations):
        city = _pick(rng, CITIES, city_weights)
        power = _pick(rng, POWER_CLASSES, class_weights)
        operator, markup_cents, _ = _pick(rng, OPERATORS, operator_weights)
        counts, weights = zip(*power.connectors)
        connector_count = _pick(rng, counts, list(weights))
        vendor, model = rng.choice(power.hardware)
        # a few km around the centre; a degree of longitude shrinks with latitude
        latitude = city.latitude + rng.uniform(-0.04, 0.04)
        longitude = city.longitude + rng.uniform(-0.06, 0.06) / max(0.3, math.cos(math.radians(city.latitude)))
        # Faker draws from its own generator, seeded from ours: names depend on the seed only
        with _FAKER_LOCK:
            fake = _faker(city.locale)
            fake.seed_instance(rng.getrandbits(64))
            street = fake.street_name()
        fleet.append(
            Station(
                index=index,
                station_id=f"{city.country}-{city.code}-{index + 1:04d}",
                name=f"{operator.split()[0]} {city.name} {street} {rng.choice(_STREET_KINDS)}"[:200],
                operator=operator,
                city=city,
                latitude=round(latitude, 6),
                longitude=round(longitude, 6),
                power=power,
                connector_count=connector_count,
                price_eur_per_kwh=(power.base_price_cents + markup_cents) / 100,
                vendor=vendor,
                model=model,
                firmware_version=f"{rng.randint(1, 6)}.{rng.randint(0, 12)}.{rng.randint(0, 40)}",
                popularity=power.popularity * connector_count * rng.lognormvariate(0, 0.35),
            )
        )
    return fleet
