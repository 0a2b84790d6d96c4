"""Vehicles and charging: how fast a car charges at a station, and what the meter reads.

Power depends on state of charge only, so a session is precomputed once as a table of
(time, energy, SoC) at 1 % SoC steps and read back at any time by interpolation: a DC curve
stays flat to ~50 % and then tapers, an AC curve is flat until the car is nearly full; both are
capped by the station and by the car. The meter counts grid-side energy (charging losses
included), like a real charger's register.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from dataclasses import dataclass

from evmonitor.simulator.fleet import Station

__all__ = ["VEHICLES", "ChargeCurve", "Reading", "Vehicle", "Visit", "electrical", "new_driver", "sample_visit"]


@dataclass(frozen=True, slots=True)
class Vehicle:
    model: str
    battery_kwh: float  # usable capacity
    max_ac_kw: float
    max_dc_kw: float
    pack_voltage_v: float  # nominal: ~400 V or ~800 V architecture

    @property
    def ac_phases(self) -> int:
        return 1 if self.max_ac_kw <= 7.4 else 3


# (model, usable kWh, AC kW, DC kW peak, nominal pack V): public spec-sheet values, rounded
VEHICLES: tuple[Vehicle, ...] = (
    Vehicle("Renault Zoe R135", 52.0, 22.0, 50.0, 400.0),
    Vehicle("Nissan Leaf", 40.0, 6.6, 50.0, 360.0),
    Vehicle("Fiat 500e", 42.0, 11.0, 85.0, 400.0),
    Vehicle("Peugeot e-208", 46.0, 7.4, 100.0, 400.0),
    Vehicle("VW ID.3 Pro", 58.0, 11.0, 120.0, 400.0),
    Vehicle("Cupra Born", 58.0, 11.0, 120.0, 400.0),
    Vehicle("BYD Atto 3", 60.5, 11.0, 88.0, 400.0),
    Vehicle("MG4 Long Range", 61.7, 11.0, 135.0, 400.0),
    Vehicle("Volvo EX30", 64.0, 11.0, 153.0, 400.0),
    Vehicle("Mercedes EQA 250", 66.5, 11.0, 100.0, 400.0),
    Vehicle("Tesla Model 3 RWD", 57.5, 11.0, 170.0, 400.0),
    Vehicle("Tesla Model Y Long Range", 75.0, 11.0, 250.0, 400.0),
    Vehicle("VW ID.4 Pro", 77.0, 11.0, 135.0, 400.0),
    Vehicle("Skoda Enyaq 80", 77.0, 11.0, 135.0, 400.0),
    Vehicle("Audi Q4 e-tron 40", 76.6, 11.0, 135.0, 400.0),
    Vehicle("Hyundai Ioniq 5 LR", 77.4, 11.0, 235.0, 800.0),
    Vehicle("Kia EV6 LR", 77.4, 11.0, 240.0, 800.0),
    Vehicle("Polestar 2 LR", 78.0, 11.0, 205.0, 400.0),
    Vehicle("BMW i4 eDrive40", 80.7, 11.0, 205.0, 400.0),
    Vehicle("Porsche Taycan", 83.7, 22.0, 270.0, 800.0),
    Vehicle("Mercedes EQE 350", 90.0, 11.0, 170.0, 400.0),
    Vehicle("Tesla Model S", 95.0, 16.5, 250.0, 400.0),
    Vehicle("BMW iX xDrive50", 100.0, 11.0, 195.0, 400.0),
)

_EFFICIENCY = {"AC": 0.90, "DC": 0.94}  # battery-side energy / grid-side energy
_STOP_REASONS = (("Local", 50), ("EVDisconnected", 36), ("Remote", 11), ("Other", 1.5), ("PowerLoss", 1),
                 ("EmergencyStop", 0.5))
_STOP_NAMES = tuple(r for r, _ in _STOP_REASONS)
_STOP_WEIGHTS = tuple(w for _, w in _STOP_REASONS)


def _dc_factor(soc: float) -> float:
    """Share of the car's peak DC power it accepts at `soc` percent."""
    if soc <= 50:
        return 1.0
    if soc <= 80:
        return 1.0 - 0.45 * (soc - 50) / 30
    return 0.55 - 0.43 * (soc - 80) / 20


def _ac_factor(soc: float) -> float:
    return 1.0 if soc <= 93 else 1.0 - 0.65 * (soc - 93) / 7


@dataclass(frozen=True, slots=True)
class Reading:
    soc_percent: float
    energy_wh: float  # grid side, since the session started
    power_kw: float  # grid side, now


class ChargeCurve:
    """A car charging from `soc_start` towards `soc_target` at a station; `at(t_s)` reads it."""

    __slots__ = ("battery_kwh", "full_s", "_times", "_energy", "_socs", "_powers")

    def __init__(self, vehicle: Vehicle, station: Station, soc_start: float, soc_target: float) -> None:
        dc = station.power.is_dc
        efficiency = _EFFICIENCY["DC" if dc else "AC"]
        self.battery_kwh = vehicle.battery_kwh
        socs = [soc_start]
        while socs[-1] < soc_target:
            socs.append(min(soc_target, float(int(socs[-1]) + 1)))
        times, energy, powers = [0.0], [0.0], []
        for low, high in zip(socs, socs[1:]):
            mid = (low + high) / 2
            if dc:
                kw = min(station.power.max_power_kw, vehicle.max_dc_kw * _dc_factor(mid))
            else:
                kw = min(station.power.max_power_kw, vehicle.max_ac_kw) * _ac_factor(mid)
            grid_kwh = vehicle.battery_kwh * (high - low) / 100 / efficiency
            times.append(times[-1] + grid_kwh / kw * 3600)
            energy.append(energy[-1] + grid_kwh * 1000)
            powers.append(kw)
        self._times, self._energy, self._socs, self._powers = times, energy, socs, powers
        self.full_s = times[-1]

    def at(self, t_s: float) -> Reading:
        """The state `t_s` seconds after charging began; after `full_s` the car draws nothing."""
        times = self._times
        if t_s >= self.full_s:
            return Reading(self._socs[-1], self._energy[-1], 0.0)
        i = max(0, bisect_right(times, t_s) - 1)
        share = (t_s - times[i]) / (times[i + 1] - times[i])
        return Reading(
            self._socs[i] + share * (self._socs[i + 1] - self._socs[i]),
            self._energy[i] + share * (self._energy[i + 1] - self._energy[i]),
            self._powers[i],
        )


def electrical(reading: Reading, vehicle: Vehicle, dc: bool, rng: random.Random) -> tuple[float, float]:
    """(voltage_v, current_a) the charger reports: pack voltage on DC, phase voltage on AC."""
    if dc:
        voltage = vehicle.pack_voltage_v * (0.88 + 0.17 * reading.soc_percent / 100)
        current = reading.power_kw * 1000 / voltage
    else:
        voltage = rng.uniform(226.0, 234.0)
        current = reading.power_kw * 1000 / (voltage * vehicle.ac_phases)
    return round(voltage, 1), round(current, 1)


@dataclass(frozen=True, slots=True)
class Visit:
    """A driver at a charger: the car, how full it is and wants to be, how long they stay."""

    id_tag: str
    vehicle: Vehicle
    soc_start: float
    soc_target: float
    dwell_s: float  # at most this long plugged in, charging or not
    plug_in_s: float  # from Preparing to the session starting (cable, authorisation)
    leave_s: float  # from the session ending to the connector being free again
    stop_reason: str


def sample_visit(rng: random.Random, driver: tuple[str, Vehicle], station: Station) -> Visit:
    """What a driver with `driver` = (id_tag, vehicle) does at `station`."""
    id_tag, vehicle = driver
    if station.power.is_dc:  # a stop on the way: arrive fairly empty, leave around 80 %
        soc_start = round(rng.uniform(8, 45), 1)
        soc_target = rng.choices((80.0, 85.0, 90.0, 100.0), weights=(55, 15, 15, 15))[0]
        dwell_s = rng.triangular(600, 3600, 1500)
    else:  # parked at work, shopping or overnight
        soc_start = round(rng.uniform(15, 75), 1)
        soc_target = rng.choices((80.0, 90.0, 100.0), weights=(40, 20, 40))[0]
        dwell_s = rng.triangular(1200, 4 * 3600, 3600)
    return Visit(
        id_tag=id_tag,
        vehicle=vehicle,
        soc_start=soc_start,
        soc_target=max(soc_target, soc_start + 5),
        dwell_s=dwell_s,
        plug_in_s=rng.uniform(20, 120),
        leave_s=rng.uniform(30, 600),
        stop_reason=rng.choices(_STOP_NAMES, weights=_STOP_WEIGHTS)[0],
    )


def new_driver(rng: random.Random) -> tuple[str, Vehicle]:
    """An RFID card (7-byte UID, hex) and the car it charges."""
    return f"{rng.getrandbits(56):014X}", rng.choice(VEHICLES)
