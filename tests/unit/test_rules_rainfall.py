"""Rainfall accumulations and rules, table-driven: reports in, windows and transitions out."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from hydro.models import StationKind
from hydro.rules import load_rules, render
from hydro.rules.evaluate import Change, FamilyState, NewReadings
from hydro.rules.model import Severity
from hydro.rules.rainfall import (
    RainfallTable,
    RainRing,
    evaluate_rainfall,
    hundredths,
    slot_of,
)
from tests.support import station

RULES = load_rules(Path(__file__).resolve().parents[2] / "alert_rules")
GAUGES = [station("P1", kind=StationKind.RAIN), station("P2", kind=StationKind.RAIN)]
TABLE = RainfallTable.build(RULES, GAUGES)
T = 1_778_148_000  # 2026-05-07 18:00 in Shanghai, on a 5-minute boundary
HOUR = 12  # slots


def ring_with(reports: list[tuple[int, float]], *, head: int = T, span: int = 2 * 288) -> RainRing:
    """Station 0's reports as (minutes before ``T``, mm), stored in one go."""
    ring = RainRing(len(GAUGES), span)
    ring.advance(int(slot_of(np.array([head]))[0]))
    minutes = np.array([m for m, _ in reports], dtype=np.int64)
    refused = ring.put(
        np.zeros(len(reports), dtype=np.int64),
        slot_of(T - 60 * minutes),
        hundredths(np.array([mm for _, mm in reports])),
    )
    assert not refused.any()
    return ring


def window(ring: RainRing, slots: int, *, end_minutes: int = 0) -> tuple[float, int]:
    acc = ring.accumulations(np.array([0]), slot_of(np.array([T - 60 * end_minutes])), [slots])
    return float(acc.mm(slots)[0]), int(acc.missing[0, 0])


@pytest.mark.parametrize(
    ("reports", "slots", "end_minutes", "expected"),
    [
        ([(5 * i, 1.0) for i in range(12)], HOUR, 0, (12.0, 0)),
        # Two reports missing: 10 mm known, 10 minutes unknown (not dry).
        ([(5 * i, 1.0) for i in range(12) if i not in (3, 4)], HOUR, 0, (10.0, 2)),
        # The report at the window's end counts; one at its start (60 min earlier) does not.
        ([(0, 2.0), (60, 7.0)], HOUR, 0, (2.0, 11)),
        ([(0, 2.0), (60, 7.0)], HOUR, 5, (7.0, 11)),
        # A report between the 5-minute marks closes the slot ending after it.
        ([(2, 1.5)], 1, 0, (1.5, 0)),
        ([(5 * i, 0.5) for i in range(36)], 3 * HOUR, 0, (18.0, 0)),
        # Nothing at all: every slot unknown.
        ([], 6 * HOUR, 0, (0.0, 72)),
    ],
)
def test_accumulations_count_known_rain_and_unknown_slots(
    reports: list[tuple[int, float]], slots: int, end_minutes: int, expected: tuple[float, int]
) -> None:
    assert window(ring_with(reports), slots, end_minutes=end_minutes) == expected


def test_a_repeated_or_corrected_slot_is_refused_for_reloading_never_added_twice() -> None:
    ring = ring_with([(0, 3.0)])
    slot = slot_of(np.array([T, T, T - 300, T - 3000 * 300]))
    refused = ring.put(np.array([0, 1, 1, 1]), slot, hundredths(np.array([4.0, 1.0, 1.0, 9.0])))
    # Station 0's 18:00 slot is taken; station 1's two fit; the last is older than the ring.
    assert refused.tolist() == [True, False, False, True]
    assert window(ring, HOUR) == (3.0, 11)
    stored = hundredths(np.array([4.0, 0.5]))
    ring.replace(np.array([0]), np.array([0, 0]), slot[[0, 2]], stored)
    assert window(ring, HOUR) == (4.5, 10)  # the stored truth, once


def test_two_reports_of_one_slot_in_one_batch_are_both_refused() -> None:
    ring = ring_with([])
    refused = ring.put(
        np.array([0, 0]), slot_of(np.array([T - 120, T - 60])), np.array([100, 200], np.int32)
    )
    assert refused.tolist() == [True, True]
    assert window(ring, 1) == (0.0, 1)


def test_a_late_back_fill_lands_in_its_own_slots() -> None:
    ring = ring_with([(0, 1.0)])
    ring.put(np.zeros(6, dtype=np.int64), slot_of(T - 300 * np.arange(1, 7)), np.full(6, 250))
    assert window(ring, HOUR) == (16.0, 5)
    assert window(ring, HOUR, end_minutes=10) == (12.5, 7)  # ending at a back-filled report


def test_advancing_forgets_old_slots_and_windows_beyond_the_ring_are_unknown() -> None:
    ring = ring_with([(5 * i, 1.0) for i in range(12)], span=24)
    ring.advance(ring.head + HOUR)  # an hour later, nothing reported
    assert window(ring, HOUR, end_minutes=-60) == (0.0, 12)
    assert window(ring, 2 * HOUR, end_minutes=-60) == (12.0, 12)
    ring.advance(ring.head + 3 * HOUR)
    assert window(ring, 2 * HOUR, end_minutes=-240) == (0.0, 24)


def test_accumulations_for_many_stations_ending_together_match_each_alone() -> None:
    rng = np.random.default_rng(7)
    ring = RainRing(200, 300)
    ring.advance(1000)
    cells = rng.integers(0, 300, size=(200, 300))
    for s in range(200):
        known = rng.random(300) < 0.8
        ring.put(np.full(known.sum(), s), np.arange(701, 1001)[known], cells[s][known])
    stations = np.arange(200)
    together = ring.accumulations(stations, np.full(200, 1000), [12, 36, 288])
    alone = ring.accumulations(stations[:3], np.full(3, 1000), [12, 36, 288])
    assert np.array_equal(together.total[:, :3], alone.total)
    assert np.array_equal(together.missing[:, :3], alone.missing)


def rank_reached(reports: list[tuple[int, float]], family: str = "rainstorm") -> int:
    """The rank the station's alert stands at after its last report (0: none)."""
    ring = ring_with(reports)
    f = TABLE.families.index(family)
    states = [FamilyState.empty(len(GAUGES)) for _ in TABLE.families]
    new_states, _ = evaluate_rainfall(
        TABLE, states, NewReadings(*(np.array([x]) for x in (0, T, 0.0, 0))), ring, clear_after=2
    )
    return int(new_states[f].rank[0])


@pytest.mark.parametrize(
    ("earlier_minutes", "earlier", "now", "family", "expected"),
    [
        # 暴雨蓝色: 50 mm in 12 h (the 6 h window holds only half of it).
        (715, 25.0, 24.9, "rainstorm", 0),
        (715, 25.0, 25.0, "rainstorm", 1),
        # 暴雨黄色: 50 mm in 6 h.
        (355, 25.0, 24.9, "rainstorm", 0),  # 49.9 mm in 12 h too
        (355, 25.0, 25.0, "rainstorm", 2),
        # 暴雨橙色: 50 mm in 3 h.
        (175, 25.0, 24.9, "rainstorm", 0),
        (175, 25.0, 25.0, "rainstorm", 3),
        # 暴雨红色: 100 mm in 3 h.
        (175, 50.0, 49.9, "rainstorm", 3),
        (175, 50.0, 50.0, "rainstorm", 4),
        # 短时强降雨: 20 mm in 1 h.
        (55, 10.0, 9.9, "short_heavy_rain", 0),
        (55, 10.0, 10.0, "short_heavy_rain", 1),
    ],
)
def test_each_signal_at_its_boundary(
    earlier_minutes: int, earlier: float, now: float, family: str, expected: int
) -> None:
    assert rank_reached([(earlier_minutes, earlier), (0, now)], family) == expected


def test_fifty_millimetres_in_tenths_is_exactly_fifty() -> None:
    reports = [(5 * i, 1.4) for i in range(35)] + [(175, 1.0)]
    assert sum(mm for _, mm in reports) < 50.0  # as floats, 49.99999999999999
    assert rank_reached(reports) == 3


def run_series(series: list[float]) -> list[tuple[str, int, int, float, int]]:
    """Station 0 reporting ``series`` every 5 minutes up to ``T``, one report per tick:
    (change, rank, minutes before T, mm of the rank's window, missing slots)."""
    n = len(series)
    ring = RainRing(len(GAUGES), 2 * 288)
    states = [FamilyState.empty(len(GAUGES)) for _ in TABLE.families]
    found = []
    for k, mm in enumerate(series):
        time = T - 300 * (n - 1 - k)
        ring.advance(int(slot_of(np.array([time]))[0]))
        ring.put(np.array([0]), slot_of(np.array([time])), hundredths(np.array([mm])))
        readings = NewReadings(np.array([0]), np.array([time]), np.array([mm]), np.array([0]))
        states, transitions = evaluate_rainfall(TABLE, states, readings, ring, clear_after=2)
        f = TABLE.families.index("rainstorm")
        found += [
            (Change(c).name, int(r), int((T - t) // 60), float(v), int(m))
            for fam, c, r, t, v, m in zip(
                transitions.family,
                transitions.change,
                transitions.rank,
                transitions.time,
                transitions.value,
                transitions.missing,
                strict=True,
            )
            if fam == f
        ]
    return found


def test_a_storm_opens_escalates_and_clears_once_below_threshold_minus_margin() -> None:
    # Eight hours of 6 mm/h from T - 21:55 (48 mm), then 30 mm in an hour, then dry from T - 13:00.
    series = [0.5] * 96 + [2.5] * 12 + [0.0] * 156
    assert run_series(series) == [
        # Blue: the 12 h window reaches 50.5 mm although the gauge started 8 h before (47
        # slots of it unknown: more rain may have fallen, none less).
        ("OPEN", 1, 835, 50.5, 47),
        # Yellow: 50.0 mm in 6 h, exactly at the threshold.
        ("ESCALATE", 2, 805, 50.0, 0),
        # The 12 h window falls below 50 - 5 mm at T - 4:25 (44.5) and T - 4:20 (44.0): two
        # consecutive low reports. 45.0 at T - 4:30 was not low.
        ("CLEAR", 2, 260, 0.0, 0),
    ]


def test_the_message_says_how_much_of_the_window_is_unknown() -> None:
    [rule] = [r for r in RULES.rainfall_rules if r.id == "rainstorm_orange"]
    gauge = GAUGES[0]
    body = render(
        rule.message,
        gauge,
        observed_at=dt.datetime(2026, 11, 22, 6, 0, tzinfo=dt.UTC),
        severity=Severity.ORANGE,
        value=52.5,
        window=rule.window,
        missing=dt.timedelta(minutes=20),
    )
    assert body == (
        "黔东南州台江县测站P111月22日14时0分前3小时降雨量达到52.5毫米(其中20分钟无数据),"
        "达到暴雨橙色预警标准,请及时复核并提醒相关责任人戒备,注意防范"
    )
    complete = render(
        rule.message,
        gauge,
        observed_at=dt.datetime(2026, 11, 22, 6, tzinfo=dt.UTC),
        severity=Severity.ORANGE,
        value=52.5,
        window=rule.window,
    )
    assert "无数据" not in complete
