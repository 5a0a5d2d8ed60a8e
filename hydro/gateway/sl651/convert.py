"""From a decoded SL 651 report to gateway-contract readings (pure; the rain counters are state).

One reading per observation time: water level (39 river or 3B reservoir upstream), flow (27),
supply voltage (38, ``battery_v``) and rainfall as the contract defines it, mm since the
station's previous report. Rainfall comes from, in this order:

1. F4, twelve 5-minute amounts: one reading per 5 minutes, the last at the observation time;
2. 26, the accumulated counter: the difference from the station's previous counter. A counter
   below the previous one was reset (or wrapped) and counts from zero. The first counter a
   station sends after the receiver starts only sets the baseline and gives no rainfall: the
   receiver keeps counters in memory, and a guess would store a wrong amount. A frame sent
   again (same time, same counter) gets the same amount again; an older one gets none;
3. 1A, rain in the last hour (an hourly report's period);
4. 20, the current period's rain (since the previous report).

1A and 20 also stand in when the counter gives no amount (its first value, an older frame).

F5 carries twelve 5-minute levels *relative* to a base the RTU is configured with; hydro anchors
them on the instantaneous level of the same observation (the twelfth value is taken at that
time). Without an instantaneous level in the frame the series is skipped and counted.
A reading with only a voltage is not a reading under the contract: dropped and counted.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from hydro.gateway.sl651.elements import SERIES_STEPS, Field
from hydro.gateway.sl651.frame import Observation, Report

STEP = dt.timedelta(minutes=5)
_MEASURED = ("water_level", "flow", "rainfall")


@dataclass(frozen=True, slots=True)
class _Counted:
    time: dt.datetime
    counter: float
    rainfall: float | None


class RainCounters:
    """Each station's last accumulated-rainfall counter (element 26), in memory."""

    def __init__(self) -> None:
        self._last: dict[str, _Counted] = {}

    def since_previous(self, station: str, time: dt.datetime, counter: float) -> float | None:
        last = self._last.get(station)
        if last is not None and time <= last.time:
            same = time == last.time and counter == last.counter
            return last.rainfall if same else None
        if last is None:
            rainfall = None
        elif counter < last.counter:
            rainfall = counter
        else:
            rainfall = round(counter - last.counter, 1)
        self._last[station] = _Counted(time, counter, rainfall)
        return rainfall


def readings_of(
    report: Report, station: str, counters: RainCounters
) -> tuple[list[dict[str, object]], Counter[str]]:
    """Reading objects as the contract defines them, and what was left out and why."""
    skipped = Counter(report.skipped)
    by_time: dict[dt.datetime, dict[str, float]] = {}
    for observation in report.observations:
        _observe(observation, station, counters, by_time, skipped)
    readings: list[dict[str, object]] = []
    for time in sorted(by_time):
        fields = by_time[time]
        if not any(name in fields for name in _MEASURED):
            skipped["voltage_only"] += 1
            continue
        readings.append({"station": station, "time": time.isoformat(), **fields})
    return readings, skipped


def _observe(
    observation: Observation,
    station: str,
    counters: RainCounters,
    by_time: dict[dt.datetime, dict[str, float]],
    skipped: Counter[str],
) -> None:
    at = observation.time
    point: dict[Field, float] = {}
    series: dict[Field, tuple[float | None, ...]] = {}
    for element, value in observation.values:
        assert element.field is not None
        if isinstance(value, tuple):
            series.setdefault(element.field, value)
        else:
            point.setdefault(element.field, value)
    here = by_time.setdefault(at, {})
    for name, field in (
        ("water_level", Field.WATER_LEVEL),
        ("flow", Field.FLOW),
        ("battery_v", Field.BATTERY_V),
    ):
        if field in point:
            here[name] = point[field]
    accumulated = point.get(Field.ACCUMULATED_RAIN)
    from_counter = (
        counters.since_previous(station, at, accumulated) if accumulated is not None else None
    )
    times = [at - (SERIES_STEPS - 1 - i) * STEP for i in range(SERIES_STEPS)]
    rain_series = series.get(Field.RAIN_SERIES)
    if rain_series is not None:
        for time, amount in zip(times, rain_series, strict=True):
            if amount is not None:
                by_time.setdefault(time, {})["rainfall"] = amount
    elif from_counter is not None:
        here["rainfall"] = from_counter
    else:  # no counter, or one that gives no amount (a baseline, an old frame)
        for field in (Field.HOUR_RAIN, Field.CURRENT_RAIN):
            if field in point:
                here["rainfall"] = point[field]
                break
    level_series = series.get(Field.LEVEL_SERIES)
    if level_series is not None:
        level = point.get(Field.WATER_LEVEL)
        last = level_series[-1]
        if level is None or last is None:
            skipped["F5:no_level"] += 1
            return
        for time, relative in zip(times, level_series, strict=True):
            if relative is not None:
                by_time.setdefault(time, {})["water_level"] = round(level - last + relative, 3)
