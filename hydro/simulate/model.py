"""A storm over the registry, as numbers: what every gauge would report at each 5-minute step.

Pure and vectorised with numpy (no I/O, an injected start time and seed), so a step for 7,000
stations costs well under a millisecond and the same seed replays the same storm. The shape is
deliberately simple: rain cells over a few prefectures build and pass; levels follow the rain
with a lag (a linear-reservoir response) and recede. ``storm`` scales everything: 0 is calm
weather in which no station reaches a characteristic level, 1 pushes a good share of river
stations over their warning level, some over the guaranteed level, and reservoirs over normal.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hydro.models import Station, StationKind

FloatArray = npt.NDArray[np.float64]
REPORT_INTERVAL = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Step:
    """One report from every station; NaN where a station does not measure a variable."""

    time: dt.datetime
    water_level: FloatArray
    flow: FloatArray
    rainfall: FloatArray
    battery_v: FloatArray


class StormModel:
    """Advances every station by one report interval per :meth:`step`."""

    def __init__(
        self,
        stations: Sequence[Station],
        *,
        start: dt.datetime,
        steps: int,
        storm: float,
        seed: int = 0,
    ) -> None:
        rng = np.random.default_rng(seed)
        n = len(stations)
        self._rng = rng
        self._time = start
        self._steps = max(steps, 2)
        self._index = 0
        kind = np.array([s.kind.value for s in stations])
        self._river = kind == StationKind.RIVER.value
        self._reservoir = kind == StationKind.RESERVOIR.value
        self._rain = kind == StationKind.RAIN.value
        prefectures = sorted({s.prefecture for s in stations})
        prefecture_index = np.array([prefectures.index(s.prefecture) for s in stations])
        # The storm hits some prefectures fully and brushes the others.
        hit = rng.random(len(prefectures)) < 0.5
        if prefectures and not hit.any():
            hit[rng.integers(len(prefectures))] = True
        self._exposure = np.where(hit[prefecture_index], 1.0, 0.15) * storm

        warning = _levels(stations, "warning_level")
        guaranteed = _levels(stations, "guaranteed_level")
        normal = _levels(stations, "normal_level")
        # Calm baseline: rivers 1.5-3.5 m under warning, reservoirs 0.6-1.5 m under normal.
        self._base = np.where(
            self._river,
            warning - rng.uniform(1.5, 3.5, n),
            np.where(self._reservoir, normal - rng.uniform(0.6, 1.5, n), np.nan),
        )
        # Peak rise at full exposure: from just short of warning to past guaranteed.
        span = np.where(np.isnan(guaranteed - warning), 2.0, guaranteed - warning)
        target = np.where(
            self._river,
            warning + rng.uniform(-0.8, 1.3, n) * span,
            normal + rng.uniform(-0.5, 0.6, n),
        )
        self._amplitude = np.nan_to_num(target - self._base)
        self._lag = rng.uniform(0.05, 0.2, n)  # when, as a share of the run, a gauge peaks late
        self._phase = rng.uniform(0, 2 * math.pi, n)
        self._battery = rng.uniform(12.2, 13.4, n)

    def step(self) -> Step:
        """The reports at the current time; then time advances by one interval."""
        n = self._amplitude.shape[0]
        progress = self._index / (self._steps - 1)
        rain_pulse = _bump(progress, centre=0.35, width=0.15)
        rise = self._amplitude * self._exposure * _bump(progress - self._lag, 0.35, 0.18)
        hour = self._time.hour + self._time.minute / 60
        diurnal = 0.02 * np.sin(2 * math.pi * hour / 24 + self._phase)
        level = self._base + rise + diurnal + self._rng.normal(0, 0.005, n)
        intensity = 8.0 * rain_pulse * self._exposure  # mm per 5 min at the heart of the cell
        rainfall = np.maximum(intensity * self._rng.gamma(4.0, 0.25, n) - 0.2, 0.0)
        flow = np.maximum(5.0 + 40.0 * np.maximum(rise, 0.0) + self._rng.normal(0, 0.5, n), 0.1)
        step = Step(
            time=self._time,
            water_level=np.where(self._rain, np.nan, np.round(level, 2)),
            flow=np.where(self._river, np.round(flow, 1), np.nan),
            rainfall=np.round(rainfall, 1),
            battery_v=np.round(self._battery - 0.0005 * self._index, 2),
        )
        self._index += 1
        self._time += REPORT_INTERVAL
        return step


def _bump(x: float | FloatArray, centre: float, width: float) -> FloatArray:
    return np.asarray(np.exp(-0.5 * ((np.asarray(x) - centre) / width) ** 2), dtype=np.float64)


def _levels(stations: Sequence[Station], name: str) -> FloatArray:
    values = [getattr(s, name) for s in stations]
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
