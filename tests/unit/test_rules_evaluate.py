"""Threshold evaluation, table-driven: series of levels in, alert transitions out."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from hydro.models import FloodSeason, Station, StationKind
from hydro.rules import load_rules
from hydro.rules.evaluate import (
    Change,
    FamilyState,
    NewReadings,
    ThresholdTable,
    evaluate_silence,
    evaluate_thresholds,
    local_month_day,
    rises,
    silence_after,
)
from hydro.rules.levels import alert_levels, level_verdicts
from tests.support import station

RULES = load_rules(Path(__file__).resolve().parents[2] / "alert_rules")
RIVER = station("R1")  # warning 775.0, guaranteed 777.0
RESERVOIR = dataclasses.replace(
    station("V1", kind=StationKind.RESERVOIR),
    flood_limit_level=770.5,
    design_flood_level=773.0,
    flood_season=FloodSeason((5, 1), (9, 30)),
)  # flood limit 770.5 (in season), normal 771.5, design 773.0
STATIONS = [RIVER, RESERVOIR]
TABLE = ThresholdTable.build(RULES, STATIONS)
RIVER_FAMILY = TABLE.families.index("river_level")
T0 = 1_778_112_000  # 2026-05-07 00:00 UTC, 08:00 in Shanghai: inside the flood season


def run(
    series: list[float],
    *,
    index: int = 0,
    mmdd: int = 507,
    states: list[FamilyState] | None = None,
) -> tuple[list[tuple[str, int, int, float]], list[FamilyState]]:
    """One station's series, 5 minutes apart, as one tick: (change, rank, minute, value)."""
    n = len(series)
    readings = NewReadings(
        station=np.full(n, index),
        time=T0 + 300 * np.arange(n),
        value=np.array(series, dtype=float),
        local_mmdd=np.full(n, mmdd),
    )
    states = states or [FamilyState.empty(len(STATIONS)) for _ in TABLE.families]
    new_states, found = evaluate_thresholds(TABLE, states, readings, margin=0.05, clear_after=2)
    return [
        (Change(c).name, int(r), int((t - T0) // 60), float(v))
        for c, r, t, v in zip(found.change, found.rank, found.time, found.value, strict=True)
    ], new_states


@pytest.mark.parametrize(
    ("series", "expected"),
    [
        ([774.0, 774.9], []),
        ([774.0, 775.0, 775.3, 775.2], [("OPEN", 1, 5, 775.0)]),  # at the level counts
        ([775.1, 777.2, 777.5], [("OPEN", 1, 0, 775.1), ("ESCALATE", 2, 5, 777.2)]),
        ([774.0, 777.0], [("OPEN", 2, 5, 777.0)]),  # straight to guaranteed: one SMS
        # Flicker around the warning level: one alert, no clear, no storm.
        ([775.02, 774.98, 775.01, 774.97, 775.03, 774.99], [("OPEN", 1, 0, 775.02)]),
        # Clearing needs two consecutive readings below 775.0 - 0.05.
        ([775.2, 774.9, 775.1, 774.9, 774.94], [("OPEN", 1, 0, 775.2), ("CLEAR", 1, 20, 774.94)]),
        ([775.2, 774.94, 775.0, 774.9], [("OPEN", 1, 0, 775.2)]),
        # Falling from guaranteed to between the levels steps down, with the clear's hysteresis.
        (
            [777.5, 776.0, 776.0, 774.0, 774.0],
            [("OPEN", 2, 0, 777.5), ("STEP_DOWN", 1, 10, 776.0), ("CLEAR", 1, 20, 774.0)],
        ),
        # Flicker around the guaranteed level, within the margin: nothing after the open.
        ([777.2, 776.97, 777.01, 776.96, 777.03, 776.99, 776.96], [("OPEN", 2, 0, 777.2)]),
        # Below it by more than the margin, but never twice in a row: no step down either.
        ([777.2, 776.9, 777.1, 776.9, 777.0, 776.9, 777.1], [("OPEN", 2, 0, 777.2)]),
        # A step down, then back above: one escalation, then one step down again.
        (
            [777.2, 776.5, 776.5, 777.1, 776.5, 776.5],
            [
                ("OPEN", 2, 0, 777.2),
                ("STEP_DOWN", 1, 10, 776.5),
                ("ESCALATE", 2, 15, 777.1),
                ("STEP_DOWN", 1, 25, 776.5),
            ],
        ),
        # Straight below the warning level, but the reading before still held it: a step down
        # first (clearing would skip the warning level's hysteresis), then the clear.
        (
            [777.5, 776.0, 774.0, 774.0, 774.0],
            [("OPEN", 2, 0, 777.5), ("STEP_DOWN", 1, 10, 774.0), ("CLEAR", 1, 20, 774.0)],
        ),
        ([777.5, 774.0, 774.0], [("OPEN", 2, 0, 777.5), ("CLEAR", 2, 10, 774.0)]),
        # A back-filled batch with a peak inside opens at the peak's own time.
        ([770.0] * 5 + [775.4] + [770.0] * 3, [("OPEN", 1, 25, 775.4), ("CLEAR", 1, 35, 770.0)]),
        ([float("nan"), 775.5], [("OPEN", 1, 5, 775.5)]),  # a missing value is no reading
    ],
)
def test_river_series(series: list[float], expected: list[tuple[str, int, int, float]]) -> None:
    assert run(series)[0] == expected


@pytest.mark.parametrize(
    ("series", "mmdd", "expected"),
    [
        ([770.4, 770.6], 507, [("OPEN", 1, 5, 770.6)]),  # 超汛限 in the flood season
        ([770.4, 770.6], 1201, []),  # the same level in December: nothing
        ([770.5], 507, []),  # "above": at the level is not above
        ([771.54], 1201, [("OPEN", 2, 0, 771.54)]),  # 超正常蓄水位 applies all year
        ([771.6, 773.1], 507, [("OPEN", 2, 0, 771.6), ("ESCALATE", 3, 5, 773.1)]),
        # From 设计 to between 汛限 and 正常 in the season: one step down, to the rank held.
        ([773.5, 771.0, 771.0], 507, [("OPEN", 3, 0, 773.5), ("STEP_DOWN", 1, 10, 771.0)]),
        ([773.5, 772.0, 771.0], 507, [("OPEN", 3, 0, 773.5), ("STEP_DOWN", 2, 10, 771.0)]),
        # Out of season 汛限 does not apply: the same fall clears.
        ([773.5, 771.0, 771.0], 1201, [("OPEN", 3, 0, 773.5), ("CLEAR", 3, 10, 771.0)]),
    ],
)
def test_reservoir_series(
    series: list[float], mmdd: int, expected: list[tuple[str, int, int, float]]
) -> None:
    assert run(series, index=1, mmdd=mmdd)[0] == expected


def test_state_carries_from_tick_to_tick() -> None:
    first, states = run([776.0])
    assert first == [("OPEN", 1, 0, 776.0)]
    assert (states[RIVER_FAMILY].rank[0], states[RIVER_FAMILY].rank[1]) == (1, 0)
    again, states = run([776.5], states=states)
    assert again == []  # still above: nothing new to say
    dipped, states = run([774.0], states=states)
    assert dipped == []
    assert states[RIVER_FAMILY].below[0] == 1
    cleared, states = run([774.0], states=states)
    assert cleared == [("CLEAR", 1, 0, 774.0)]
    assert states[RIVER_FAMILY].rank[0] == 0


def test_a_step_down_under_way_carries_from_tick_to_tick() -> None:
    first, states = run([777.5, 776.0])
    assert first == [("OPEN", 2, 0, 777.5)]
    assert (states[RIVER_FAMILY].below[0], states[RIVER_FAMILY].held[0]) == (1, 1)
    stepped, states = run([774.0], states=states)
    assert stepped == [("STEP_DOWN", 1, 0, 774.0)]  # 776.0 held the warning level
    assert (states[RIVER_FAMILY].rank[0], states[RIVER_FAMILY].below[0]) == (1, 0)


def test_many_stations_in_any_order() -> None:
    n = 1000
    stations = [station(f"S{i}") for i in range(n)]
    table = ThresholdTable.build(RULES, stations)
    rng = np.random.default_rng(1)
    index = np.repeat(np.arange(n), 3)
    time = T0 + 300 * np.tile(np.arange(3), n)
    value = np.tile([774.0, 776.0, 778.0], n)
    shuffled = rng.permutation(index.size)
    readings = NewReadings(index[shuffled], time[shuffled], value[shuffled], np.full(3 * n, 507))
    states = [FamilyState.empty(n) for _ in table.families]
    _, found = evaluate_thresholds(table, states, readings, margin=0.05, clear_after=2)
    assert len(found) == 2 * n
    assert np.array_equal(found.station, np.repeat(np.arange(n), 2))
    assert set(found.change.tolist()) == {Change.OPEN, Change.ESCALATE}


def test_inputs_are_not_changed() -> None:
    states = [FamilyState.empty(len(STATIONS)) for _ in TABLE.families]
    run([776.0], states=states)
    assert not states[RIVER_FAMILY].rank.any()


@pytest.mark.parametrize(
    ("utc", "zone", "mmdd"),
    [
        ("2026-04-30T15:59:59", "Asia/Shanghai", 430),
        ("2026-04-30T16:00:00", "Asia/Shanghai", 501),  # 00:00 on May 1st in Shanghai
        ("2026-03-29T00:30:00", "Europe/Berlin", 329),
        ("2026-12-31T23:30:00", "Europe/Berlin", 101),
    ],
)
def test_local_month_day(utc: str, zone: str, mmdd: int) -> None:
    seconds = int(dt.datetime.fromisoformat(utc).replace(tzinfo=dt.UTC).timestamp())
    result = local_month_day(np.array([seconds]), [zone], np.array([0]))
    assert result.tolist() == [mmdd]


def test_rise_is_measured_from_the_lowest_level_within_the_window() -> None:
    station = np.array([0, 0, 0, 0, 1, 1])
    time = np.array([0, 300, 600, 4000, 0, 300])
    value = np.array([1.0, 0.8, 1.5, 2.0, 5.0, 5.6])
    # At 4000 s the window (3600 s) reaches back to 400 s: the lowest is then 1.5, not 0.8.
    assert rises(station, time, value, window=3600).round(2).tolist() == [0, 0, 0.7, 0.5, 0, 0.6]


@pytest.mark.parametrize(
    ("interval_min", "age_min", "silent"),
    [
        (5, 15, False),  # a 5-minute station: 15 minutes is the rule's own after
        (5, 15.1, True),
        (1, 15.1, True),  # reporting more often never makes the rule stricter
        (60, 15.1, False),  # an hourly batch: its newest value ages an hour between batches
        (60, 69, False),
        (60, 70, False),
        (60, 70.1, True),  # the batch is 10 minutes overdue: one missed batch
        (1440, 1449, False),
        (1440, 1451, True),
    ],
)
def test_silence_is_judged_against_the_station_reporting_interval(
    interval_min: int, age_min: float, silent: bool
) -> None:
    after = silence_after(900, np.array([interval_min * 60]))
    now = 10_000_000
    result = evaluate_silence(
        np.array([now - age_min * 60]),
        np.array([False]),
        np.array([True]),
        now=now,
        after=after,
    )
    assert result.silent.tolist() == [silent]
    assert result.began.tolist() == ([0] if silent else [])


def test_silence_of_many_stations_at_once() -> None:
    after = silence_after(900, np.array([300, 3600, 300, 3600, 300]))
    now = 10_000_000
    last_seen = now - np.array([1200.0, 1200.0, np.nan, 4500.0, 60.0])
    was_silent = np.array([False, True, False, False, True])
    result = evaluate_silence(last_seen, was_silent, np.ones(5, dtype=bool), now=now, after=after)
    # never reported: no baseline, not silent; the hourly station reported again
    assert result.silent.tolist() == [True, False, False, True, False]
    assert (result.began.tolist(), result.ended.tolist()) == ([0, 3], [1, 4])


WRAPPED = dataclasses.replace(
    RESERVOIR, code="V2", flood_season=FloodSeason((11, 1), (2, 28))
)  # a southern-hemisphere season across the new year
NEW_YORK = dataclasses.replace(RESERVOIR, code="V3", timezone="America/New_York")
NO_GUARANTEED = dataclasses.replace(RIVER, code="R2", guaranteed_level=None)


@pytest.mark.parametrize(
    ("target", "value", "at"),
    [
        (RIVER, 774.99, "2026-05-07 00:00"),
        (RIVER, 775.0, "2026-05-07 00:00"),  # at_or_above: at the level fires
        (RIVER, 776.99, "2026-05-07 00:00"),
        (RIVER, 777.0, "2026-05-07 00:00"),
        (NO_GUARANTEED, 780.0, "2026-05-07 00:00"),
        (RESERVOIR, 770.5, "2026-05-07 00:00"),  # above: at the level does not
        (RESERVOIR, 770.51, "2026-05-07 00:00"),
        (RESERVOIR, 770.51, "2026-12-07 00:00"),  # outside the flood season
        (RESERVOIR, 771.0, "2026-09-30 15:59"),  # 23:59 on the season's last day in Shanghai
        (RESERVOIR, 771.0, "2026-09-30 16:00"),  # already October 1st there
        (RESERVOIR, 771.5, "2026-12-07 00:00"),
        (RESERVOIR, 771.51, "2026-12-07 00:00"),
        (RESERVOIR, 773.01, "2026-05-07 00:00"),
        (WRAPPED, 771.0, "2026-12-31 12:00"),
        (WRAPPED, 771.0, "2026-01-01 12:00"),
        (WRAPPED, 771.0, "2026-03-01 12:00"),
        (WRAPPED, 771.0, "2026-10-31 12:00"),
        (NEW_YORK, 771.0, "2026-05-01 03:59"),  # April 30th in New York
        (NEW_YORK, 771.0, "2026-05-01 04:00"),
    ],
)
def test_rules_test_and_the_evaluator_agree_on_every_level_rule(
    target: Station, value: float, at: str
) -> None:
    """`hydro rules test` and reports judge one level at a time (rules/levels.py); the evaluator
    judges every station at once (evaluate_thresholds). The same case must give the same alert
    level in each family, or the two have drifted apart."""
    observed_at = dt.datetime.fromisoformat(at).replace(tzinfo=dt.UTC)
    one_at_a_time = {
        v.rule.family: v.rule.id
        for v in alert_levels(level_verdicts(RULES, target, value, observed_at))
    }
    table = ThresholdTable.build(RULES, [target])
    seconds = np.array([int(observed_at.timestamp())])
    _, found = evaluate_thresholds(
        table,
        [FamilyState.empty(1) for _ in table.families],
        NewReadings(
            np.zeros(1, dtype=np.int64),
            seconds,
            np.array([value]),
            local_month_day(seconds, [target.timezone], np.zeros(1, dtype=np.int64)),
        ),
        margin=0.05,
        clear_after=2,
    )
    all_at_once = {
        table.families[f]: table.rules[f][r - 1].id
        for f, r in zip(found.family.tolist(), found.rank.tolist(), strict=True)
    }
    assert all_at_once == one_at_a_time
