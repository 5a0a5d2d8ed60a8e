"""The columnar judge is a shortcut, never a second opinion: a message it accepts whole is judged
exactly as the reading-by-reading judge would judge it, and any other message goes to that judge.

Property-based, like test_ingest_fuzz.py, but aimed at the edges of what the shortcut takes:
values at and beside each kind's bounds, NaN and infinities, integers, times at the window's
edges, codes of other gateways, extra fields.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hydro.config import IngestConfig
from hydro.ingest.validate import (
    ValidationRules,
    Verdict,
    _plain_readings,
    _ReadingJudge,
    judge_message,
)
from hydro.models import StationKind
from tests.support import station
from tests.unit.test_ingest_fuzz import FUZZ

RECEIVED = dt.datetime(2026, 5, 7, 0, 0, tzinfo=dt.UTC)
STATIONS = {
    "60312345": station("60312345", gateway="gw-1"),
    "60312346": station("60312346", gateway=None, kind=StationKind.RESERVOIR),
    "70000001": station("70000001", gateway=None, kind=StationKind.RAIN),
    "80000001": station("80000001", gateway=None, timezone="Europe/Berlin"),
    "90000001": station("90000001", gateway="gw-2"),
}
RULES = ValidationRules.from_config(
    IngestConfig.model_validate(
        {
            "bounds_by_kind": {
                "rain": {"rainfall": {"min": 0, "max": 300}},
                "reservoir": {"water_level": {"min": 0, "max": 3000}},
            }
        }
    ),
    "hydro",
)
TOPIC = "hydro/gw-1/readings"


GOOD = ["60312345", "60312346", "70000001", "80000001"]
# Each variable's bounds over the kinds above, and the doubles on either side of each.
BOUNDS = {
    "water_level": [-100.0, 0.0, 3000.0, 6000.0],
    "flow": [0.0, 200_000.0],
    "rainfall": [0.0, 300.0, 500.0],
    "battery_v": [0.0, 60.0],
}


def values(name: str) -> st.SearchStrategy[float]:
    """Mostly floats every kind takes; then any within the widest bounds, and those on either
    side of every kind's bounds."""
    bounds = BOUNDS[name]
    edges = [
        e for b in bounds for e in (math.nextafter(b, -math.inf), b, math.nextafter(b, math.inf))
    ]
    everywhere = st.floats(min_value=max(0.0, bounds[0]), max_value=min(60.0, bounds[-1]))
    widest = st.floats(min_value=bounds[0], max_value=bounds[-1])
    return st.one_of(*[everywhere] * 6, widest, st.sampled_from(edges))


window = [RECEIVED - RULES.max_past, RECEIVED + RULES.max_future]
recent = st.integers(
    min_value=int(-RULES.max_past.total_seconds()), max_value=int(RULES.max_future.total_seconds())
).map(lambda s: RECEIVED + dt.timedelta(seconds=s))
times = st.one_of(
    *[recent.map(dt.datetime.isoformat)] * 4,
    recent.map(lambda t: (t + dt.timedelta(hours=8)).replace(tzinfo=None).isoformat()),
    st.sampled_from([t + dt.timedelta(seconds=s) for t in window for s in (-1, 0, 1)]).map(
        dt.datetime.isoformat
    ),
)
readings = st.builds(
    lambda code, time, measured, battery: {
        "station": code,
        "time": time,
        **dict([measured]),
        **({} if battery is None else {"battery_v": battery}),
    },
    st.sampled_from(GOOD),
    times,
    st.sampled_from(["water_level", "flow", "rainfall"]).flatmap(
        lambda name: st.tuples(st.just(name), values(name))
    ),
    st.none() | values("battery_v"),
)
# One field of one reading made what gateways should not send ("measured": its measurement).
BAD_VALUES = [math.nan, math.inf, -math.inf, 5, 0, True, "1.0", None, []]
spoils = st.tuples(st.just("station"), st.sampled_from(["90000001", "", "9", 60312345, None]))
spoils |= st.tuples(st.just("time"), st.sampled_from(["2026-05-07", 1778112000, None, "x"]))
spoils |= st.tuples(st.sampled_from(["measured", "battery_v"]), st.sampled_from(BAD_VALUES))
spoils |= st.tuples(st.just("signal"), st.just(-70))


def assert_judged_as_one_by_one(items: list[dict[str, Any]]) -> None:
    payload = json.dumps({"readings": items}).encode()
    verdict = judge_message(TOPIC, payload, RECEIVED, stations=STATIONS, rules=RULES)
    expected = Verdict(gateway="gw-1")
    judge = _ReadingJudge(
        TOPIC, "gw-1", RECEIVED, stations=STATIONS, rules=RULES, verdict=expected, zero_padded=None
    )
    for item in json.loads(payload)["readings"]:
        judge.judge(item)
    assert verdict.readings == expected.readings
    assert [type(v) for r in verdict.readings for v in r] == [
        type(v) for r in expected.readings for v in r
    ]
    assert verdict.rejections == expected.rejections
    assert verdict.unknown_fields == expected.unknown_fields


@FUZZ
@given(st.lists(readings, min_size=1, max_size=6), st.none() | st.tuples(st.integers(), spoils))
def test_a_message_is_judged_as_the_reading_by_reading_judge_judges_it(
    items: list[dict[str, Any]], spoil: tuple[int, tuple[str, Any]] | None
) -> None:
    if spoil is not None:
        where, (name, value) = spoil
        item = items[where % len(items)]
        if name == "measured":
            name = next(n for n in ("water_level", "flow", "rainfall") if n in item)
        item[name] = value
    assert_judged_as_one_by_one(items)


AT = "2026-05-07T07:55:00+08:00"
PLAIN = {"station": "60312345", "time": AT, "water_level": 1.0}


@pytest.mark.parametrize(
    "spoilt",
    [
        {**PLAIN, "water_level": math.nan},  # after plain values: min and max cannot order NaN
        {**PLAIN, "water_level": math.inf},
        {"station": "60312345", "time": AT, "battery_v": 12.0},  # no measurement
        {"station": "70000001", "time": AT, "rainfall": 400.0},  # a river's, not a rain gauge's
        {"station": "60312346", "time": AT, "water_level": 3000.5},  # a river's, not a reservoir's
        {**PLAIN, "station": "90000001"},  # another gateway's station
        {**PLAIN, "water_level": 2},  # an integer: the judge stores 2.0
    ],
)
def test_one_reading_the_shortcut_cannot_take_sends_the_message_to_the_judge(
    spoilt: dict[str, Any],
) -> None:
    items = [PLAIN, {**PLAIN, "time": "2026-05-07T07:50:00+08:00"}, spoilt]
    assert _plain_readings(items, "gw-1", RECEIVED, STATIONS, RULES) is None
    assert_judged_as_one_by_one(items)


def test_what_gateways_send_takes_the_shortcut() -> None:
    items = [
        PLAIN,
        {"station": "60312346", "time": AT, "water_level": 770.0},
        {"station": "70000001", "time": "2026-05-07T07:55:00", "rainfall": 0.5, "battery_v": 12.6},
    ]
    assert _plain_readings(items, "gw-1", RECEIVED, STATIONS, RULES) is not None
    assert_judged_as_one_by_one(items)
