"""Threshold evaluation for every station at once: readings in, alert transitions out. Pure.

Each threshold-rule family (river 警戒 -> 保证, reservoir 汛限 -> 正常 -> 设计) is one alert per
station that opens at the first rank crossed, escalates to higher ranks and never steps down; it
clears only after ``clear_after`` consecutive readings below the family's lowest applicable level
minus ``margin``, so a level flickering around a threshold cannot produce a storm of SMS.

Readings are taken in observation-time order per station, however late they arrived: a peak
inside a back-filled batch opens its alert at the peak's own time. The work is vectorised across
stations: the loop runs once per reading *position* (the k-th new reading of every station), which
is one or two per tick in normal operation and the backlog's length after an outage.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from hydro.models import Station
from hydro.rules.loader import RuleSet
from hydro.rules.model import LevelRule

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class Change(IntEnum):
    OPEN = 1
    ESCALATE = 2
    CLEAR = 3


@dataclass(frozen=True)
class ThresholdTable:
    """The threshold rules resolved against the registry, built once per registry and rule set.

    ``levels[f]`` has one row per rank of family ``f`` and one column per station: the level to
    compare with, NaN where the rule does not apply (another kind, no such level in the registry).
    """

    families: tuple[str, ...]
    rules: tuple[tuple[LevelRule, ...], ...]  # per family, by rank
    levels: tuple[FloatArray, ...]
    strict: tuple[BoolArray, ...]  # per family and rank: "above" rather than "at_or_above"
    seasonal: tuple[BoolArray, ...]  # per family and rank: only inside the flood season
    season_start: IntArray  # per station, month * 100 + day; -1 without a season
    season_end: IntArray

    @classmethod
    def build(cls, rules: RuleSet, stations: Sequence[Station]) -> ThresholdTable:
        by_family: dict[str, list[LevelRule]] = {}
        for rule in rules.level_rules:
            by_family.setdefault(rule.family, []).append(rule)
        families = tuple(sorted(by_family))
        ordered = tuple(tuple(sorted(by_family[f], key=lambda r: r.rank)) for f in families)
        levels = []
        for family_rules in ordered:
            rows = np.full((len(family_rules), len(stations)), np.nan)
            for rank, rule in enumerate(family_rules):
                for index, station in enumerate(stations):
                    value = getattr(station, rule.level)
                    if value is not None and station.kind in rule.kinds:
                        rows[rank, index] = value
            levels.append(rows)
        seasons = [s.flood_season for s in stations]
        return cls(
            families=families,
            rules=ordered,
            levels=tuple(levels),
            strict=tuple(np.array([r.condition == "above" for r in fr]) for fr in ordered),
            seasonal=tuple(np.array([r.in_flood_season_only for r in fr]) for fr in ordered),
            season_start=np.array([_mmdd(s.start) if s else -1 for s in seasons], dtype=np.int64),
            season_end=np.array([_mmdd(s.end) if s else -1 for s in seasons], dtype=np.int64),
        )

    @property
    def stations(self) -> int:
        return int(self.season_start.shape[0])


def _mmdd(month_day: tuple[int, int]) -> int:
    return month_day[0] * 100 + month_day[1]


@dataclass(frozen=True)
class FamilyState:
    """Per station: the rank its alert stands at (0: no alert) and its readings below clearing."""

    rank: npt.NDArray[np.int8]
    below: npt.NDArray[np.int16]

    @classmethod
    def empty(cls, stations: int) -> FamilyState:
        return cls(np.zeros(stations, dtype=np.int8), np.zeros(stations, dtype=np.int16))


@dataclass(frozen=True)
class NewReadings:
    """Water levels received since the previous tick, in any order; ``local_mmdd`` is each
    reading's date in its station's time zone as month * 100 + day (for flood seasons)."""

    station: IntArray
    time: IntArray  # Unix seconds
    value: FloatArray
    local_mmdd: IntArray


@dataclass(frozen=True)
class Transitions:
    """What changed, one entry per alert transition, in observation-time order per station."""

    family: IntArray
    station: IntArray
    change: IntArray  # Change
    rank: IntArray  # the rank after the change (1-based); for CLEAR the rank that cleared
    time: IntArray
    value: FloatArray

    def __len__(self) -> int:
        return int(self.station.shape[0])


def evaluate_thresholds(
    table: ThresholdTable,
    states: Sequence[FamilyState],
    readings: NewReadings,
    *,
    margin: float,
    clear_after: int,
) -> tuple[list[FamilyState], Transitions]:
    """The new state of every family and the transitions that led there. Inputs are not changed."""
    station, time, value, mmdd = _in_station_order(readings)
    # Position of each reading among its station's new readings: 0, 1, 2, ...
    starts = np.flatnonzero(np.r_[True, station[1:] != station[:-1]])
    rounds = int(np.max(np.diff(np.r_[starts, station.size]), initial=0))
    if rounds > 1:
        position = np.arange(station.size) - np.repeat(starts, np.diff(np.r_[starts, station.size]))
    in_season = _in_season(table, station, mmdd)

    new_states: list[FamilyState] = []
    found: list[tuple[npt.NDArray[Any], ...]] = []
    for f in range(len(table.families)):
        rank = states[f].rank.copy()
        below = states[f].below.copy()
        reached, floor = _reached_and_floor(table, f, station, value, in_season)
        for k in range(rounds):
            # One reading per station at a time, all stations at once. The common case, one
            # new reading per station, needs no fancy indexing at all.
            at: IntArray | slice = slice(None) if rounds == 1 else np.flatnonzero(position == k)
            s = station[at]
            current, now_reached, v = rank[s], reached[at], value[at]
            opened = (current == 0) & (now_reached > 0)
            escalated = (current > 0) & (now_reached > current)
            low = (current > 0) & (v < floor[at] - margin)
            counted = np.where(low, below[s] + 1, 0)  # consecutive: any other reading resets
            cleared = low & (counted >= clear_after)
            for change, mask, new_rank in (
                (Change.OPEN, opened, now_reached),
                (Change.ESCALATE, escalated, now_reached),
                (Change.CLEAR, cleared, current),
            ):
                hit = np.flatnonzero(mask)
                if hit.size:
                    found.append(
                        (
                            np.full(hit.size, f),
                            s[hit],
                            np.full(hit.size, int(change)),
                            new_rank[hit].astype(np.int64),
                            time[at][hit],
                            v[hit],
                        )
                    )
            rank[s] = np.where(opened | escalated, now_reached, np.where(cleared, 0, current))
            below[s] = np.where(cleared, 0, counted)
        new_states.append(FamilyState(rank, below))
    return new_states, _collect(found)


def _in_station_order(readings: NewReadings) -> tuple[IntArray, IntArray, FloatArray, IntArray]:
    """Readings with a value, sorted by station then observation time (copies only if needed)."""
    station, time, value, mmdd = (
        readings.station,
        readings.time,
        readings.value,
        readings.local_mmdd,
    )
    finite = np.isfinite(value)
    if not finite.all():
        station, time, value, mmdd = station[finite], time[finite], value[finite], mmdd[finite]
    same = station[1:] == station[:-1]
    ordered = np.all((station[1:] > station[:-1]) | (same & (time[1:] >= time[:-1])))
    if not ordered:
        order = np.lexsort((time, station))
        station, time, value, mmdd = station[order], time[order], value[order], mmdd[order]
    return station, time, value, mmdd


def _reached_and_floor(
    table: ThresholdTable, family: int, station: IntArray, value: FloatArray, in_season: BoolArray
) -> tuple[npt.NDArray[np.int8], FloatArray]:
    """Per reading: the highest rank it crosses (0: none), and the lowest level that applies
    to it, below which (minus the margin) the family's alert clears."""
    reached = np.zeros(station.size, dtype=np.int8)
    floor = np.full(station.size, np.inf)
    every = station.size == table.stations and bool(np.all(station == np.arange(station.size)))
    with np.errstate(invalid="ignore"):
        for rank, row in enumerate(table.levels[family], start=1):
            level = row if every else row[station]
            applicable = ~np.isnan(level)
            if table.seasonal[family][rank - 1]:
                applicable &= in_season
            above = value > level if table.strict[family][rank - 1] else value >= level
            reached[applicable & above] = rank  # ranks ascend: the highest crossed wins
            np.fmin(floor, np.where(applicable, level, np.inf), out=floor)
    return reached, floor


def _in_season(table: ThresholdTable, station: IntArray, mmdd: IntArray) -> BoolArray:
    start, end = table.season_start[station], table.season_end[station]
    inside = np.where(
        start <= end, (mmdd >= start) & (mmdd <= end), (mmdd >= start) | (mmdd <= end)
    )
    return inside & (start >= 0)


def _collect(found: list[tuple[npt.NDArray[Any], ...]]) -> Transitions:
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return Transitions(empty, empty, empty, empty, empty, np.zeros(0))
    columns = [np.concatenate(parts) for parts in zip(*found, strict=True)]
    order = np.lexsort((columns[4], columns[1]))  # by station, then observation time
    family, station, change, rank, time, value = (c[order] for c in columns)
    return Transitions(family, station, change, rank, time, value.astype(np.float64))


def local_month_day(times: IntArray, zones: Sequence[str], zone_of_reading: IntArray) -> IntArray:
    """month * 100 + day of each Unix time in its zone; one zoneinfo call per zone and UTC hour."""
    result = np.empty(times.shape, dtype=np.int64)
    hours = times // 3600
    for z, name in enumerate(zones):
        mine = zone_of_reading == z
        if not mine.any():
            continue
        zone = ZoneInfo(name)
        unique_hours, inverse = np.unique(hours[mine], return_inverse=True)
        offsets = np.array([_offset_seconds(int(h), zone) for h in unique_hours], dtype=np.int64)
        local = (times[mine] + offsets[inverse]).astype("datetime64[s]")
        months = local.astype("datetime64[M]").astype(np.int64) % 12 + 1
        days = (local.astype("datetime64[D]") - local.astype("datetime64[M]")).astype(np.int64) + 1
        result[mine] = months * 100 + days
    return result


def _offset_seconds(hour: int, zone: ZoneInfo) -> int:
    offset = dt.datetime.fromtimestamp(hour * 3600, dt.UTC).astimezone(zone).utcoffset()
    return 0 if offset is None else int(offset.total_seconds())


@dataclass(frozen=True)
class Silences:
    silent: BoolArray  # per station, after this tick
    began: IntArray  # stations that fell silent this tick
    ended: IntArray  # stations that reported again


def evaluate_silence(
    last_seen: FloatArray, silent: BoolArray, applies: BoolArray, *, now: int, after: int
) -> Silences:
    """Stations with no reading for more than ``after`` seconds. ``last_seen`` is each station's
    latest observation time in Unix seconds, NaN for a station that never reported: with no
    baseline it is not called silent (a new registry must not page every station at once)."""
    with np.errstate(invalid="ignore"):
        now_silent = applies & (now - last_seen > after)
    return Silences(
        silent=now_silent,
        began=np.flatnonzero(now_silent & ~silent),
        ended=np.flatnonzero(silent & ~now_silent),
    )


def rises(station: IntArray, time: IntArray, value: FloatArray, *, window: int) -> FloatArray:
    """For readings sorted by station then time: each value minus the lowest value of the same
    station within the ``window`` seconds up to it (0 for a station's first reading)."""
    lowest = value.copy()
    for back in range(1, station.size):
        earlier = np.arange(back, station.size)
        within = (station[earlier - back] == station[earlier]) & (
            time[earlier] - time[earlier - back] <= window
        )
        if not within.any():
            break  # readings further back are further apart still
        np.fmin.at(lowest, earlier[within], value[earlier - back][within])
    return value - lowest


def single_threshold_table(threshold: float, applies: BoolArray, family: str) -> ThresholdTable:
    """A one-rank family comparing a derived quantity (a rise) with one threshold everywhere the
    rule applies, so rate-of-rise alerts share the threshold lifecycle and hysteresis."""
    return ThresholdTable(
        families=(family,),
        rules=((),),
        levels=(np.where(applies, threshold, np.nan)[None, :],),
        strict=(np.array([False]),),
        seasonal=(np.array([False]),),
        season_start=np.full(applies.size, -1, dtype=np.int64),
        season_end=np.full(applies.size, -1, dtype=np.int64),
    )
