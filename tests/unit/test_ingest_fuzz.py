"""Judging is total: whatever bytes arrive, each reading is stored or quarantined with a reason.

Property-based: hypothesis generates messages around the gateway contract (edge numbers and
times, wrong types, extra keys, text no encoder takes) and raw bytes, with a fixed budget and
derandomized, so CI runs the same examples every time in a few seconds.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hydro.config import IngestConfig
from hydro.ingest.validate import ValidationRules, judge_message
from hydro.models import RejectionCode
from hydro.store.readings import storable_text
from tests.support import station

RECEIVED = dt.datetime(2026, 5, 7, 0, 0, tzinfo=dt.UTC)
STATIONS = {
    "60312345": station("60312345", gateway="gw-1"),
    "00312345": station("00312345", gateway=None),
    "123": station("123", gateway=None),
    "0123": station("0123", gateway=None),
    "80000001": station("80000001", gateway=None, timezone="America/St_Johns"),
}
RULES = ValidationRules.from_config(
    IngestConfig.model_validate({"max_message_bytes": 20_000, "max_message_readings": 50}),
    "hydro",
)
TOPIC = "hydro/gw-1/readings"
FIELDS = ["station", "time", "water_level", "flow", "rainfall", "battery_v"]

FUZZ = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
edge_ints = (
    st.sampled_from(
        [0, -1, 1, 2**31, -(2**31) - 1, 2**53 + 1, 2**63, -(2**63) - 1, 2**64, 10**308, 10**400]
    )
    | st.integers()
)
edge_floats = st.sampled_from(
    [0.0, -0.0, 5e-324, 1e308, -1e308, 1.7976931348623157e308, math.inf, -math.inf, math.nan]
) | st.floats(allow_nan=True, allow_infinity=True)
json_scalars = st.none() | st.booleans() | edge_ints | edge_floats | any_text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8,
)
years = st.sampled_from([1, 2, 1969, 1970, 2026, 2038, 9998, 9999])
offsets = st.sampled_from(["", "Z", "+08:00", "-08:00", "+23:59", "-23:59", "+14:00", "-03:30"])
iso_times = st.builds(
    lambda y, m, d, h, off, sep: f"{y:04d}-{m:02d}-{d:02d}{sep}{h:02d}:00:00{off}",
    years,
    st.sampled_from([1, 3, 10, 12]),
    st.sampled_from([1, 29, 31]),
    st.sampled_from([0, 2, 23]),
    offsets,
    st.sampled_from(["T", " "]),
)
registry_codes = st.sampled_from(["60312345", "00312345", "123", "0123", "80000001"])
station_values = (
    registry_codes
    | registry_codes
    | st.sampled_from([60312345, 312345, 123, 80000001])
    | json_values
)
recent_times = st.integers(min_value=-400 * 86400, max_value=900).map(
    lambda seconds: RECEIVED + dt.timedelta(seconds=seconds)
)
good_times = (
    recent_times.map(lambda t: int(t.timestamp()))
    | recent_times.map(dt.datetime.isoformat)
    | recent_times.map(lambda t: (t + dt.timedelta(hours=8)).replace(tzinfo=None).isoformat())
)
time_values = good_times | good_times | iso_times | edge_ints | json_values
measurement_values = (
    st.floats(min_value=-200, max_value=7000)
    | st.integers(min_value=-200, max_value=7000)
    | edge_floats
    | edge_ints
    | json_values
)

readings = st.fixed_dictionaries(
    {"station": station_values, "time": time_values},
    optional={
        "water_level": measurement_values,
        "flow": measurement_values,
        "rainfall": measurement_values,
        "battery_v": measurement_values,
        "signal": json_values,
    },
) | st.dictionaries(st.sampled_from(FIELDS) | any_text, json_values, max_size=6)
messages = (
    readings
    | st.builds(lambda rs: {"readings": rs}, st.lists(readings | json_values, max_size=8))
    | st.builds(
        lambda rs, extra: {"readings": rs, **extra},
        st.lists(readings, max_size=4),
        st.dictionaries(any_text, json_values, max_size=2),
    )
    | json_values
)
topics = st.sampled_from([TOPIC, "hydro/x/readings"])


def encode(document: Any, ascii_only: bool) -> bytes:
    """As a gateway would send it; text with lone surrogates goes escaped, as JSON allows."""
    try:
        return json.dumps(document, ensure_ascii=ascii_only).encode()
    except UnicodeEncodeError:
        return json.dumps(document, ensure_ascii=True).encode()


def assert_accepted_or_refused_with_reason(topic: str, payload: bytes) -> None:
    verdict = judge_message(topic, payload, RECEIVED, stations=STATIONS, rules=RULES)
    for reading in verdict.readings:
        assert reading.station in STATIONS
        assert reading.time.tzinfo is dt.UTC
        assert RECEIVED - dt.timedelta(days=366) <= reading.time
        assert reading.time <= RECEIVED + dt.timedelta(minutes=10)
        values = [reading.water_level, reading.flow, reading.rainfall, reading.battery_v]
        assert any(v is not None for v in values[:3])
        assert all(type(v) is float and math.isfinite(v) for v in values if v is not None)
    for rejection in verdict.rejections:
        assert isinstance(rejection.code, RejectionCode)
        assert rejection.reason
        assert isinstance(rejection.payload, bytes)
        for text in (rejection.topic, rejection.gateway, rejection.reason, rejection.station):
            if text is not None:
                storable_text(text).encode("utf-8")  # what the quarantine's COPY sends


@FUZZ
@given(topics, messages, st.booleans())
def test_any_json_message_is_stored_or_quarantined_with_a_reason(
    topic: str, document: Any, ascii_only: bool
) -> None:
    assert_accepted_or_refused_with_reason(topic, encode(document, ascii_only))


@FUZZ
@given(st.sampled_from([TOPIC, "hydro/gw-1/status", "hydro//readings"]) | any_text, st.binary())
def test_any_bytes_on_any_topic_are_stored_or_quarantined_with_a_reason(
    topic: str, payload: bytes
) -> None:
    assert_accepted_or_refused_with_reason(topic, payload)


@FUZZ
@given(messages, st.binary(min_size=1, max_size=8), st.integers(min_value=0))
def test_damaged_messages_are_stored_or_quarantined_with_a_reason(
    document: Any, damage: bytes, where: int
) -> None:
    """Bytes spliced into a JSON message: mostly malformed, sometimes valid and strange."""
    payload = encode(document, ascii_only=False)
    at = where % (len(payload) + 1)
    assert_accepted_or_refused_with_reason(TOPIC, payload[:at] + damage + payload[at + 1 :])
