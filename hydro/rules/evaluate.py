"""Threshold evaluation for every station at once: readings in, alert transitions out. Pure.

Each threshold-rule family (river 警戒 -> 保证, reservoir 汛限 -> 正常 -> 设计) is one alert per
station that opens at the first rank crossed and escalates to higher ranks. It steps down, or
clears, only after ``clear_after`` consecutive readings below its rank's level minus ``margin``:
to the highest rank those readings still held, or cleared when none held even the lowest
applicable level. A level flickering around a threshold cannot produce a storm of SMS.

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
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from hydro.models import DEFAULT_REPORT_INTERVAL, Station
from hydro.rules.loader import RuleSet
from hydro.rules.model import LevelRule, RainfallRule

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
DEFAULT_INTERVAL_SECONDS = int(DEFAULT_REPORT_INTERVAL.total_seconds())


class Change(IntEnum):
    OPEN = 1
    ESCALATE = 2
    CLEAR = 3
    STEP_DOWN = 4


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
        families, ordered = by_family_and_rank(rules.level_rules)
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


Ranked = TypeVar("Ranked", LevelRule, RainfallRule)


def by_family_and_rank(
    rules: Sequence[Ranked],
) -> tuple[tuple[str, ...], tuple[tuple[Ranked, ...], ...]]:
    """The families in name order, and each family's rules by rank."""
    by_family: dict[str, list[Ranked]] = {}
    for rule in rules:
        by_family.setdefault(rule.family, []).append(rule)
    families = tuple(sorted(by_family))
    return families, tuple(tuple(sorted(by_family[f], key=lambda r: r.rank)) for f in families)


def _mmdd(month_day: tuple[int, int]) -> int:
    return month_day[0] * 100 + month_day[1]


# A reading that holds every rank: rules that step down only by clearing (rainfall, rises).
HOLDS_ALL = np.iinfo(np.int8).max


@dataclass(frozen=True)
class FamilyState:
    """Per station: the rank its alert stands at (0: no alert), its consecutive readings below
    that rank's level, and the highest rank those readings still held (what it steps down to)."""

    rank: npt.NDArray[np.int8]
    below: npt.NDArray[np.int16]
    held: npt.NDArray[np.int8]

    @classmethod
    def empty(cls, stations: int) -> FamilyState:
        return cls(
            np.zeros(stations, dtype=np.int8),
            np.zeros(stations, dtype=np.int16),
            np.zeros(stations, dtype=np.int8),
        )


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
    missing: IntArray  # 5-minute slots without a report in a rainfall window (0 for levels)

    def __len__(self) -> int:
        return int(self.station.shape[0])


# One kind of change found in a round: the readings (indices into the sorted arrays) and the
# rank each one leaves its alert at.
Hits = list[tuple[Change, IntArray, npt.NDArray[np.int8]]]


def evaluate_thresholds(
    table: ThresholdTable,
    states: Sequence[FamilyState],
    readings: NewReadings,
    *,
    margin: float,
    clear_after: int,
) -> tuple[list[FamilyState], Transitions]:
    """The new state of every family and the transitions that led there. Inputs are not changed."""
    station, time, value, mmdd = in_station_order(readings)
    rounds = reading_rounds(station)
    in_season = _in_season(table, station, mmdd)
    new_states: list[FamilyState] = []
    found: list[tuple[npt.NDArray[Any], ...]] = []
    for f in range(len(table.families)):
        reached, held = _reached_and_held(table, f, station, value, in_season, margin=margin)
        state, hits = advance(states[f], station, reached, held, rounds, clear_after=clear_after)
        new_states.append(state)
        found += [
            found_columns(
                f, change, index, rank, station=station, time=time, value=value[index], missing=0
            )
            for change, index, rank in hits
        ]
    return new_states, collect(found)


def found_columns(
    family: int,
    change: Change,
    index: IntArray,
    rank: npt.NDArray[np.int8],
    *,
    station: IntArray,
    time: IntArray,
    value: FloatArray,
    missing: IntArray | int,
) -> tuple[npt.NDArray[Any], ...]:
    """The columns of :class:`Transitions` for one kind of change found in a family."""
    return (
        np.full(index.size, family),
        station[index],
        np.full(index.size, int(change)),
        rank.astype(np.int64),
        time[index],
        value,
        np.broadcast_to(np.asarray(missing, dtype=np.int64), index.shape),
    )


def reading_rounds(station: IntArray) -> list[IntArray | slice]:
    """For readings sorted by station: the indices of each station's first new reading, then of
    its second, ... The common case, one new reading per station, is a single slice."""
    starts = np.flatnonzero(np.r_[True, station[1:] != station[:-1]])
    lengths = np.diff(np.r_[starts, station.size])
    rounds = int(np.max(lengths, initial=0))
    if rounds <= 1:
        return [slice(None)] * rounds
    position = np.arange(station.size) - np.repeat(starts, lengths)
    return [np.flatnonzero(position == k) for k in range(rounds)]


def advance(
    state: FamilyState,
    station: IntArray,
    reached: npt.NDArray[np.int8],
    holds: npt.NDArray[np.int8],
    rounds: list[IntArray | slice],
    *,
    clear_after: int,
) -> tuple[FamilyState, Hits]:
    """The threshold lifecycle of one family, shared by every rule kind that has ranks.

    Per reading, ``reached`` is the highest rank it crosses (0: none) and ``holds`` the highest
    rank it stays within the clearing margin of (0: below them all; :data:`HOLDS_ALL` for rules
    that never step down). An alert opens at the first rank crossed and escalates; after
    ``clear_after`` consecutive readings below its rank (any other reading resets) it steps down
    to the highest rank one of them held, or clears if none held any.
    """
    rank = state.rank.copy()
    below = state.below.copy()
    held = state.held.copy()
    hits: Hits = []
    for at in rounds:
        # One reading per station at a time, all stations at once.
        index = np.arange(station.size)[at]
        s = station[at]
        current, now_reached, now_holds = rank[s], reached[at], holds[at]
        opened = (current == 0) & (now_reached > 0)
        escalated = (current > 0) & (now_reached > current)
        is_below = (current > 0) & (now_holds < current)
        counted = np.where(is_below, below[s] + 1, 0)
        still_held = np.where(is_below, np.maximum(held[s], now_holds), 0).astype(np.int8)
        done = is_below & (counted >= clear_after)
        cleared = done & (still_held == 0)
        stepped = done & (still_held > 0)
        for change, mask, new_rank in (
            (Change.OPEN, opened, now_reached),
            (Change.ESCALATE, escalated, now_reached),
            (Change.STEP_DOWN, stepped, still_held),
            (Change.CLEAR, cleared, current),
        ):
            hit = np.flatnonzero(mask)
            if hit.size:
                hits.append((change, index[hit], new_rank[hit]))
        rank[s] = np.where(
            opened | escalated,
            now_reached,
            np.where(cleared, 0, np.where(stepped, still_held, current)),
        )
        below[s] = np.where(done, 0, counted)
        held[s] = np.where(done, 0, still_held)
    return FamilyState(rank, below, held), hits


def in_station_order(readings: NewReadings) -> tuple[IntArray, IntArray, FloatArray, IntArray]:
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


def _reached_and_held(
    table: ThresholdTable,
    family: int,
    station: IntArray,
    value: FloatArray,
    in_season: BoolArray,
    *,
    margin: float,
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8]]:
    """Per reading: the highest rank it crosses (0: none), and the highest rank whose level
    minus the margin it is not below (0: below every level that applies: it counts to clear)."""
    reached = np.zeros(station.size, dtype=np.int8)
    held = np.zeros(station.size, dtype=np.int8)
    every = station.size == table.stations and bool(np.all(station == np.arange(station.size)))
    with np.errstate(invalid="ignore"):
        for rank, row in enumerate(table.levels[family], start=1):
            level = row if every else row[station]
            applicable = ~np.isnan(level)
            if table.seasonal[family][rank - 1]:
                applicable &= in_season
            above = value > level if table.strict[family][rank - 1] else value >= level
            reached[applicable & above] = rank  # ranks ascend: the highest crossed wins
            held[applicable & (value >= level - margin)] = rank
    return reached, held


def _in_season(table: ThresholdTable, station: IntArray, mmdd: IntArray) -> BoolArray:
    start, end = table.season_start[station], table.season_end[station]
    inside = np.where(
        start <= end, (mmdd >= start) & (mmdd <= end), (mmdd >= start) | (mmdd <= end)
    )
    return inside & (start >= 0)


def collect(found: list[tuple[npt.NDArray[Any], ...]]) -> Transitions:
    """Transitions from the columns of each change found, by station then observation time."""
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return Transitions(empty, empty, empty, empty, empty, np.zeros(0), empty)
    columns = [np.concatenate(parts) for parts in zip(*found, strict=True)]
    order = np.lexsort((columns[4], columns[1]))  # by station, then observation time
    family, station, change, rank, time, value, missing = (c[order] for c in columns)
    return Transitions(family, station, change, rank, time, value.astype(np.float64), missing)


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


def silence_after(after: int, report_interval: IntArray) -> IntArray:
    """Per station, the seconds without an observation after which it is silent: the rule's
    ``after`` (written for a station reporting every 5 minutes) plus however much longer the
    station's own reporting interval is. Between two hourly batches the newest observation
    ages by an hour; only a batch overdue by the slack a 5-minute station has (``after`` - 5
    minutes) makes it silent. Shorter intervals never make the rule stricter."""
    return after + np.maximum(report_interval - DEFAULT_INTERVAL_SECONDS, 0)


def evaluate_silence(
    last_seen: FloatArray,
    silent: BoolArray,
    applies: BoolArray,
    *,
    now: int,
    after: IntArray | int,
) -> Silences:
    """Stations with no observation for more than ``after`` seconds (one per station, see
    :func:`silence_after`). ``last_seen`` is each station's newest observation time in Unix
    seconds, NaN for a station that never reported: with no baseline it is not called silent
    (a new registry must not page every station at once)."""
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
