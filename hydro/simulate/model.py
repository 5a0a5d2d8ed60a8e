"""What every gauge of the registry would report, one report interval at a time, as numbers.

Pure and vectorised (no I/O; the start time and the seed are injected), so the same seed replays
the same weather and a step for 7,000 stations costs a fraction of a millisecond.

The weather is a sum of Gaussian rain cells drifting with one steering wind: light showers that
come and go everywhere, and, scaled by ``storm``, heavy cells that pass over about half of the
prefectures within the run. Rain gauges report the rain at their point. River and reservoir
gauges see the rain averaged over their catchment (a Gaussian cell convolved with a Gaussian
catchment is again a Gaussian, so this costs nothing extra), turned into runoff by a linear
reservoir cascade: two fast stores give floods their lag and recession, a slow one the long tail.
Rivers turn runoff into stage with a power-law rating curve; reservoirs integrate it, release
towards their usual level and spill over their normal level.

Why ``storm=0`` never crosses a characteristic level, however long the run: showers are capped at
:data:`CALM_RAIN_MAX`, a linear reservoir never puts out more than the most it was fed, so calm
runoff is bounded, and every baseline sits far enough below its level (the 汛限水位 in the flood
season, else the 正常蓄水位; the 警戒水位 for rivers) for that bounded rise plus the daily swing.
``storm=1`` brings 20-45 mm/h cells: a good share of rivers pass their warning level, some their
guaranteed level, and some reservoirs their normal level.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from hydro.models import Station, StationKind

FloatArray = npt.NDArray[np.float64]

REPORT_INTERVAL = dt.timedelta(minutes=5)

CALM_RAIN_MAX = 1.5  # mm/h: the most a shower rains anywhere, whatever the storm
RUNOFF_REF = 10.0  # mm/h of runoff at which a river stands near its guaranteed level
RATING_EXPONENT = 0.7  # stage rises with runoff to this power (rating curves are concave)
STORM_CELL_PEAK = (20.0, 45.0)  # mm/h at the heart of a heavy cell, at storm=1
_KM_PER_DEGREE = 111.2


@dataclass(frozen=True)
class Step:
    """One report from every station, in registry order; NaN where a kind does not measure.

    Rivers report ``water_level`` and ``flow``, reservoirs ``water_level``, rain gauges
    ``rainfall`` (mm since the previous report); every station reports ``battery_v``. Values are
    already rounded as a gauge sends them (levels and volts to 0.01, flow and rain to 0.1).
    """

    time: dt.datetime  # UTC
    water_level: FloatArray
    flow: FloatArray
    rainfall: FloatArray
    battery_v: FloatArray
    silent: npt.NDArray[np.bool_]  # stations that send nothing this step (a broken gauge)

    def take(self, indices: Sequence[int]) -> Step:
        """The same step for only the stations at ``indices`` (registry order)."""
        return Step(
            self.time,
            self.water_level[indices],
            self.flow[indices],
            self.rainfall[indices],
            self.battery_v[indices],
            self.silent[indices],
        )


class StepSource(Protocol):
    """What a publisher needs of a model: its interval and the next step."""

    @property
    def interval(self) -> dt.timedelta: ...

    def step(self) -> Step: ...


class Subset:
    """The steps of ``model`` for only the stations at ``indices``: one weather, two senders."""

    def __init__(self, model: StepSource, indices: Sequence[int]) -> None:
        self._model = model
        self._indices = list(indices)

    @property
    def interval(self) -> dt.timedelta:
        return self._model.interval

    def step(self) -> Step:
        return self._model.step().take(self._indices)


@dataclass(frozen=True)
class Outage:
    """The station at ``index`` (registry order) sends nothing from step ``first`` until
    ``last`` (exclusive): gauges are often destroyed, or lose power, at the peak of a flood."""

    index: int
    first: int
    last: int


@dataclass(frozen=True)
class Overtop:
    """The reservoir at ``index`` (registry order) has its spillway gate jammed shut (闸门故障):
    nothing spills, and its inflow is ``gain`` times what its catchment gives, so the storm
    takes it past its 设计洪水位 (a red warning)."""

    index: int
    gain: float


class StormModel:
    """Advances every station by one report interval per :meth:`step`.

    ``steps`` is the planned length of the run: the heavy cells pass during its first half, so a
    run of any length shows a storm building and receding. ``storm`` is 0 for calm weather and 1
    for a storm that crosses warning levels; more is allowed and is worse.
    """

    def __init__(
        self,
        stations: Sequence[Station],
        *,
        start: dt.datetime,
        steps: int,
        storm: float,
        seed: int = 0,
        interval: dt.timedelta = REPORT_INTERVAL,
        outage: Outage | None = None,
        overtop: Overtop | None = None,
    ) -> None:
        if not stations:
            raise ValueError("the model needs at least one station")
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if storm < 0:
            raise ValueError(f"storm must be 0 or more, not {storm}")
        if interval <= dt.timedelta(0):
            raise ValueError("interval must be positive")
        rng = np.random.default_rng(seed)
        self._rng = rng
        self._outage = outage
        self._start = start.astimezone(dt.UTC)
        self._interval = interval
        self._hours = interval.total_seconds() / 3600
        self._index = 0
        self._n = len(stations)
        kinds = np.array([s.kind.value for s in stations])
        self._river = np.flatnonzero(kinds == StationKind.RIVER.value)
        self._reservoir = np.flatnonzero(kinds == StationKind.RESERVOIR.value)
        self._gauge = np.flatnonzero(kinds == StationKind.RAIN.value)
        self._hydro = np.concatenate([self._river, self._reservoir])

        lat = np.array([s.lat for s in stations], dtype=np.float64)
        lon = np.array([s.lon for s in stations], dtype=np.float64)
        lat0 = float(lat.mean())
        x = (lon - float(lon.mean())) * _KM_PER_DEGREE * math.cos(math.radians(lat0))
        y = (lat - lat0) * _KM_PER_DEGREE
        self._daylight = _DailyCycle(lon / 15 - 6)  # positive from sunrise to sunset

        # A point for rain gauges; rivers and reservoirs collect from a catchment 5-25 km around.
        radius = np.zeros(self._n)
        radius[self._hydro] = rng.uniform(5.0, 25.0, len(self._hydro))
        self._catchments = _Catchments(radius[self._hydro], self._hours, rng)
        calm_runoff = self._catchments.share * CALM_RAIN_MAX
        nr = len(self._river)
        self._rivers = _Rivers(
            [stations[i] for i in self._river.tolist()],
            radius[self._river],
            lon[self._river],
            calm_runoff[:nr],
            rng,
        )
        self._reservoirs = _Reservoirs(
            [stations[i] for i in self._reservoir.tolist()], self._start, calm_runoff[nr:], rng
        )
        if overtop is not None:
            jammed = int(np.flatnonzero(self._reservoir == overtop.index)[0])
            self._reservoirs.jam(jammed, overtop.gain)
        self._battery = rng.uniform(12.3, 12.8, self._n)
        self._charge = rng.uniform(0.4, 0.9, self._n)  # volts gained in full sun
        self._weather = _Weather(
            [s.prefecture for s in stations],
            x,
            y,
            radius**2,
            rng,
            storm=storm,
            hours=max(steps, 1) * self._hours,
        )

    @property
    def interval(self) -> dt.timedelta:
        return self._interval

    @property
    def time(self) -> dt.datetime:
        """The time of the next report."""
        return self._start + self._index * self._interval

    def step(self) -> Step:
        """The reports at :attr:`time`; then time advances by one interval."""
        time = self.time
        utc_hour = time.hour + time.minute / 60 + time.second / 3600
        rain = self._weather.rain(self._index * self._hours)
        runoff = self._catchments.drain(rain[self._hydro])
        nr = len(self._river)
        # One draw for all the noise of a step: gauges, sensors and batteries.
        jitter, battery_jitter = self._rng.random((2, self._n)) - 0.5

        water_level = np.full(self._n, np.nan)
        flow = np.full(self._n, np.nan)
        rainfall = np.full(self._n, np.nan)
        level, flow[self._river] = self._rivers.report(runoff[:nr], utc_hour, jitter[self._river])
        water_level[self._river] = level
        water_level[self._reservoir] = self._reservoirs.report(
            runoff[nr:], self._hours, jitter[self._reservoir]
        )
        # A tipping bucket counts within ±30% of the rain, in 0.1 mm.
        fallen = rain[self._gauge] * self._hours * (1 + 0.6 * jitter[self._gauge])
        rainfall[self._gauge] = np.round(fallen, 1)
        sun = np.maximum(self._daylight.at(utc_hour), 0.0) * np.exp(-rain / 4)  # clouds shade
        battery = self._battery + self._charge * sun + 0.03 * battery_jitter
        silent = np.zeros(self._n, dtype=np.bool_)
        if self._outage and self._outage.first <= self._index < self._outage.last:
            silent[self._outage.index] = True
        self._index += 1
        return Step(
            time=time,
            water_level=water_level,
            flow=flow,
            rainfall=rainfall,
            battery_v=np.round(battery, 2),
            silent=silent,
        )


def outage_at_peak(
    stations: Sequence[Station],
    *,
    start: dt.datetime,
    steps: int,
    storm: float,
    seed: int = 0,
    interval: dt.timedelta = REPORT_INTERVAL,
    duration: dt.timedelta = dt.timedelta(hours=2),
    overtop: Overtop | None = None,
) -> Outage | None:
    """The gauge that rises furthest above its warning level (rivers) or normal level
    (reservoirs) in this storm goes silent at its peak for ``duration``; None if none crosses.

    A twin of the model (same seed, same weather) is run ahead to find it: cheap, since a step
    costs microseconds per station.
    """
    twin = StormModel(
        stations,
        start=start,
        steps=steps,
        storm=storm,
        seed=seed,
        interval=interval,
        overtop=overtop,
    )
    levels = np.array([twin.step().water_level for _ in range(steps)])
    reference = np.array(
        [s.warning_level if s.kind is StationKind.RIVER else s.normal_level for s in stations],
        dtype=np.float64,
    )
    above = np.nan_to_num(levels - reference, nan=-np.inf)  # rain gauges: no level, never
    excess = above.max(axis=0)
    index = int(excess.argmax())
    if excess[index] <= 0:
        return None
    peak = int(above[:, index].argmax())
    return Outage(index, peak, min(steps, peak + max(1, round(duration / interval))))


_OVERTOP_BY = 0.3  # metres over the 设计洪水位 at the jammed reservoir's peak


def overtop_in_storm(
    stations: Sequence[Station], *, start: dt.datetime, steps: int, storm: float, seed: int = 0
) -> Overtop | None:
    """The reservoir that fills furthest towards its 设计洪水位 in this storm, jammed so that it
    peaks ``_OVERTOP_BY`` over it; None without a reservoir that has one, or without rain.

    Twins of the model are run ahead, as for :func:`outage_at_peak`: one to choose the
    reservoir, one with its gate jammed to measure its rise (a jammed pool rises in proportion
    to the gain; a large one keeps the gauge's rounding out of the measure).
    """

    def levels(overtop: Overtop | None) -> FloatArray:
        twin = StormModel(
            stations, start=start, steps=steps, storm=storm, seed=seed, overtop=overtop
        )
        return np.array([twin.step().water_level for _ in range(steps)])

    design = np.array(
        [
            s.design_flood_level
            if s.kind is StationKind.RESERVOIR and s.design_flood_level is not None
            else np.nan
            for s in stations
        ],
        dtype=np.float64,
    )
    if np.isnan(design).all():
        return None
    free = levels(None)
    first = free[0]
    filled = (free.max(axis=0) - first) / (design - first)
    index = int(np.nan_to_num(filled, nan=-np.inf).argmax())
    probe = 100.0
    rise = levels(Overtop(index, probe))[:, index].max() - first[index]
    if rise <= 0:  # no rain at all over it
        return None
    return Overtop(index, float(probe * (design[index] + _OVERTOP_BY - first[index]) / rise))


class _Catchments:
    """Rain to runoff (mm/h) for every river and reservoir: two fast stores and a slow one."""

    def __init__(self, radius: FloatArray, hours: float, rng: np.random.Generator) -> None:
        n = len(radius)
        self.share = rng.uniform(0.4, 0.7, n)  # of the rain that runs off
        self._slow_share = rng.uniform(0.15, 0.3, n)
        fast_hours = rng.uniform(1.0, 2.5, n) * (1 + radius / 25)  # bigger is slower
        self._fast_keep = np.exp(-hours / fast_hours)
        self._slow_keep = np.exp(-hours / rng.uniform(24.0, 72.0, n))
        self._fast1 = np.zeros(n)
        self._fast2 = np.zeros(n)
        self._slow = np.zeros(n)

    def drain(self, rain: FloatArray) -> FloatArray:
        fed = self.share * rain
        keep, slow_keep = self._fast_keep, self._slow_keep
        self._fast1 = keep * self._fast1 + (1 - keep) * (1 - self._slow_share) * fed
        self._fast2 = keep * self._fast2 + (1 - keep) * self._fast1
        self._slow = slow_keep * self._slow + (1 - slow_keep) * self._slow_share * fed
        return np.asarray(self._fast2 + self._slow)


class _Rivers:
    """Stage from runoff: a baseline under the warning level, a rise that reaches about the
    guaranteed level at RUNOFF_REF, and a daily swing (hydropower upstream, evaporation)."""

    def __init__(
        self,
        stations: Sequence[Station],
        radius: FloatArray,
        lon: FloatArray,
        calm_runoff: FloatArray,
        rng: np.random.Generator,
    ) -> None:
        n = len(stations)
        warning = _required(stations, "warning_level")
        guaranteed = _column(stations, "guaranteed_level", fallback=warning + 1.5)
        margin = rng.uniform(1.5, 3.5, n)
        self._gain = (margin + guaranteed - warning) * rng.uniform(0.6, 1.2, n)
        swing = rng.uniform(0.005, 0.03, n)
        self._swing = _DailyCycle(lon / 15 + rng.uniform(0, 24, n), swing)
        calm_rise = self._gain * (calm_runoff / RUNOFF_REF) ** RATING_EXPONENT
        headroom = swing + 0.06  # noise, rounding to the centimetre, a margin
        self._base = warning - np.maximum(margin, calm_rise + headroom)
        self._flow_scale = 2 * math.pi * radius**2 / 3.6  # m³/s per mm/h over the catchment
        self._base_flow = rng.uniform(0.02, 0.06, n)  # mm/h: Guizhou's rivers never run dry

    def report(
        self, runoff: FloatArray, utc_hour: float, jitter: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """(water level, flow), rounded; ``jitter`` is uniform in ±0.5 per station."""
        stage = self._gain * (runoff / RUNOFF_REF) ** RATING_EXPONENT
        level = np.round(self._base + stage + self._swing.at(utc_hour) + 0.01 * jitter, 2)
        return level, np.round(self._flow_scale * (self._base_flow + runoff), 1)


class _Reservoirs:
    """Pools held under the 汛限水位 in the flood season (else the 正常蓄水位), filled by runoff,
    released back towards that baseline over a day or more, spilling over the normal level."""

    def __init__(
        self,
        stations: Sequence[Station],
        start: dt.datetime,
        calm_runoff: FloatArray,
        rng: np.random.Generator,
    ) -> None:
        n = len(stations)
        normal = _required(stations, "normal_level")
        in_season = np.array(
            [
                s.flood_season is not None
                and s.flood_season.contains(start.astimezone(s.tz).date())
                for s in stations
            ],
            dtype=bool,
        )
        limit = _column(stations, "flood_limit_level", fallback=normal)
        margin = rng.uniform(0.3, 1.2, n)
        self._base = np.where(in_season, limit, normal) - margin
        self._normal = normal
        storm_runoff = RUNOFF_REF * 8.0  # mm over the catchment in a heavy cell's passage
        self._fill = (normal - self._base) * rng.uniform(0.5, 1.5, n) / storm_runoff
        # Released at 1/24..1/72 of the excess per hour, faster where calm inflow would
        # otherwise settle the pool within 5 cm of its ceiling.
        self._release = np.maximum(
            1 / rng.uniform(24.0, 72.0, n), self._fill * calm_runoff / (margin - 0.05)
        )
        self._pool = self._base.copy()
        self._spills = np.ones(n)

    def jam(self, k: int, gain: float) -> None:
        """The k-th reservoir spills nothing and fills ``gain`` times as fast (its release is
        left as it was: the pool's rise stays proportional to ``gain``)."""
        self._spills[k] = 0.0
        self._fill[k] *= gain

    def report(self, runoff: FloatArray, hours: float, jitter: FloatArray) -> FloatArray:
        """The level now, rounded; then the pool moves on by ``hours``."""
        level = np.round(self._pool + 0.01 * jitter, 2)
        spill = 0.8 * self._spills * np.maximum(self._pool - self._normal, 0.0) ** 1.5  # head^1.5
        change = self._fill * runoff - self._release * (self._pool - self._base) - spill
        self._pool = self._pool + hours * change
        return level


class _Weather:
    """Rain rate (mm/h) at every station: at the point for gauges, over the catchment for others.

    Showers drift with the wind and wrap around the region, each raining in pulses; two heavy
    cells are aimed at each of about half of the prefectures and pass over them in the first half
    of the run, growing and dying as they go. A step is a handful of passes over one
    (stations x cells) matrix: squared distances come from one matrix product, and what depends
    only on the station and the cell (catchment smoothing) is computed once, here.
    """

    def __init__(
        self,
        prefecture: Sequence[str],
        x: FloatArray,
        y: FloatArray,
        catchment2: FloatArray,
        rng: np.random.Generator,
        *,
        storm: float,
        hours: float,
    ) -> None:
        heading = math.radians(rng.uniform(0, 40))  # from the west-southwest, as in Guizhou
        speed = rng.uniform(20, 40)  # km/h
        wind = np.array([speed * math.cos(heading), speed * math.sin(heading)])
        self._origin = np.array([x.min() - 40, y.min() - 40])
        self._extent = np.array([np.ptp(x) + 80, np.ptp(y) + 80])
        showers = int(np.clip(self._extent.prod() / 30_000, 3, 16))
        self._shower_at = self._origin + rng.random((showers, 2)) * self._extent
        self._shower_drift = 0.8 * wind
        self._shower_peak = rng.uniform(0.5, 2.5, showers)
        self._shower_phase = rng.uniform(0, 2 * math.pi, showers)
        self._shower_period = rng.uniform(2, 6, showers)  # hours

        names = sorted(set(prefecture))
        where = np.array([names.index(p) for p in prefecture])
        hit = rng.random(len(names)) < 0.5
        if not hit.any():
            hit[rng.integers(len(names))] = True  # a storm that misses everyone is no storm
        centres = [(x[where == p].mean(), y[where == p].mean()) for p in np.flatnonzero(hit)]
        target = np.repeat(np.array(centres), 2, axis=0)
        target += rng.normal(0, 15, target.shape)
        cells = len(target)
        self._passes = hours * rng.uniform(0.15, 0.5, cells)  # hour over the target
        self._cell_drift = wind + rng.normal(0, 5, (cells, 2))
        self._cell_at = target - self._cell_drift * self._passes[:, None]  # at hour 0
        self._cell_peak = storm * rng.uniform(*STORM_CELL_PEAK, cells)
        self._cell_life = rng.uniform(1.5, 3.0, cells)  # hours, standard deviation

        sigma2 = np.concatenate([rng.uniform(10, 25, showers), rng.uniform(20, 40, cells)]) ** 2
        spread = catchment2[:, None] + sigma2
        # Single precision: rain needs no more, and exp over the matrix is the step's main cost.
        self._exponent = (-0.5 / spread).astype(np.float32)
        self._smoothing = (sigma2 / spread).astype(np.float32)  # a cell's peak over a catchment
        self._station = np.column_stack([x, y, x**2 + y**2, np.ones_like(x)]).astype(np.float32)
        self._strength = np.zeros((showers + cells, 2), dtype=np.float32)  # showers, storm cells

    def rain(self, hour: float) -> FloatArray:
        showers = len(self._shower_at)
        pulse = np.sin(2 * math.pi * hour / self._shower_period + self._shower_phase)
        self._strength[:showers, 0] = self._shower_peak * np.maximum(pulse, 0.0) ** 2
        life = (hour - self._passes) / self._cell_life
        self._strength[showers:, 1] = self._cell_peak * np.exp(-0.5 * life**2)
        shower_at = self._origin + np.mod(
            self._shower_at + self._shower_drift * hour - self._origin, self._extent
        )
        at = np.concatenate([shower_at, self._cell_at + self._cell_drift * hour])
        # |station - cell|² = x² + y² - 2 x cx - 2 y cy + cx² + cy², all cells in one product.
        cell = np.vstack([-2 * at[:, 0], -2 * at[:, 1], np.ones(len(at)), (at**2).sum(axis=1)])
        field = self._station @ cell.astype(np.float32)
        field *= self._exponent
        np.exp(field, out=field)
        field *= self._smoothing
        calm, heavy = (field @ self._strength).T.astype(np.float64)
        return np.asarray(np.minimum(calm, CALM_RAIN_MAX) + heavy)


class _DailyCycle:
    """``amplitude * sin(2π (UTC hour + phase) / 24)`` for every station, phase in hours.

    Expanded as sin(a + b) = sin a cos b + cos a sin b, so a step costs two scalar sines and no
    sine per station (numpy's sine is ten times slower than a multiplication).
    """

    def __init__(self, phase: FloatArray, amplitude: FloatArray | float = 1.0) -> None:
        angle = 2 * math.pi * phase / 24
        self._cos = amplitude * np.cos(angle)
        self._sin = amplitude * np.sin(angle)

    def at(self, utc_hour: float) -> FloatArray:
        angle = 2 * math.pi * utc_hour / 24
        return np.asarray(math.sin(angle) * self._cos + math.cos(angle) * self._sin)


def _required(stations: Sequence[Station], name: str) -> FloatArray:
    missing = [s.code for s in stations if getattr(s, name) is None]
    if missing:
        raise ValueError(f"station {missing[0]} has no {name}")
    return np.array([getattr(s, name) for s in stations], dtype=np.float64)


def _column(stations: Sequence[Station], name: str, *, fallback: FloatArray) -> FloatArray:
    values = np.array([getattr(s, name) for s in stations], dtype=np.float64)  # None -> NaN
    return np.where(np.isnan(values), fallback, values)
