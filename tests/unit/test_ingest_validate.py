"""Judging gateway messages: pure, table-driven, one case per rule of the gateway contract."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from hydro.config import IngestConfig
from hydro.ingest.validate import ValidationRules, gateway_of, judge_message
from hydro.models import RejectionCode, StationKind
from tests.support import station

RECEIVED = dt.datetime(2026, 5, 7, 0, 0, tzinfo=dt.UTC)  # 08:00 in Asia/Shanghai
STATIONS = {
    "60312345": station("60312345", gateway="gw-1"),
    "60312346": station("60312346", gateway=None, kind=StationKind.RESERVOIR),
    "70000001": station("70000001", gateway=None, kind=StationKind.RAIN),
    "80000001": station("80000001", gateway=None, timezone="Europe/Berlin"),
}
RULES = ValidationRules.from_config(
    IngestConfig.model_validate({"bounds_by_kind": {"rain": {"rainfall": {"min": 0, "max": 300}}}}),
    "hydro",
)
TOPIC = "hydro/gw-1/readings"


def judge(payload: Any, topic: str = TOPIC) -> Any:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return judge_message(topic, raw, RECEIVED, stations=STATIONS, rules=RULES)


def one(**fields: Any) -> dict[str, Any]:
    return {"station": "60312345", "time": "2026-05-07T08:00:00+08:00", **fields}


@pytest.mark.parametrize(
    ("topic", "gateway"),
    [
        ("hydro/gw-1/readings", "gw-1"),
        ("hydro/gw-1/status", None),
        ("hydro//readings", None),
        ("other/gw-1/readings", None),
        ("hydro/a/b/readings", None),
    ],
)
def test_gateway_comes_from_the_topic(topic: str, gateway: str | None) -> None:
    assert gateway_of(topic, "hydro") == gateway


@pytest.mark.parametrize(
    ("payload", "topic", "code"),
    [
        (one(water_level=1.0), "hydro/gw-1/status", RejectionCode.BAD_TOPIC),
        (b"\xff\xfe{}", TOPIC, RejectionCode.BAD_ENCODING),
        (b'{"station": "60312345", ', TOPIC, RejectionCode.MALFORMED_JSON),
        ([one(water_level=1.0)], TOPIC, RejectionCode.BAD_SHAPE),
        ({"readings": 5}, TOPIC, RejectionCode.BAD_SHAPE),
        ("just text", TOPIC, RejectionCode.BAD_SHAPE),
        ({"values": []}, TOPIC, RejectionCode.BAD_SHAPE),
        (b"[" * 100_000, TOPIC, RejectionCode.MALFORMED_JSON),  # nesting must not crash us
    ],
)
def test_unreadable_messages_are_quarantined_whole_with_their_bytes(
    payload: Any, topic: str, code: RejectionCode
) -> None:
    verdict = judge(payload, topic)
    assert verdict.readings == []
    [rejection] = verdict.rejections
    assert rejection.code is code
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    assert rejection.payload == raw
    assert rejection.station is None


@pytest.mark.parametrize(
    ("reading", "code", "in_reason"),
    [
        (
            {"station": "99999999", "time": 1778112000, "water_level": 1.0},
            RejectionCode.UNKNOWN_STATION,
            "not in the registry",
        ),
        ({"time": 1778112000, "water_level": 1.0}, RejectionCode.UNKNOWN_STATION, "missing"),
        (
            one(water_level=1.0, station="60312345") | {"time": "yesterday"},
            RejectionCode.BAD_TIME,
            "yesterday",
        ),
        (one(water_level=1.0) | {"time": "2026-05-07"}, RejectionCode.BAD_TIME, "date and time"),
        (one(water_level=1.0) | {"time": None}, RejectionCode.BAD_TIME, "missing"),
        (one(water_level=1.0) | {"time": 1.5}, RejectionCode.BAD_TIME, "missing"),
        (
            one(water_level=1.0) | {"time": "2026-05-07T08:11:00+08:00"},
            RejectionCode.FUTURE_TIME,
            "after it was received",
        ),
        (one(water_level=1.0) | {"time": "1970-01-01T00:00:00Z"}, RejectionCode.TOO_OLD, "before"),
        (one(battery_v=12.5), RejectionCode.NO_MEASUREMENT, "none of"),
        (one(water_level="771.5"), RejectionCode.BAD_VALUE, "not a number"),
        (one(water_level=True), RejectionCode.BAD_VALUE, "not a number"),
        (
            one(water_level=9999.0),
            RejectionCode.OUT_OF_BOUNDS,
            "above the plausible maximum 6000.0",
        ),
        (one(flow=-1.0), RejectionCode.OUT_OF_BOUNDS, "below the plausible minimum 0.0"),
        (
            {"station": "70000001", "time": 1778112000, "rainfall": 301.0},
            RejectionCode.OUT_OF_BOUNDS,
            "300.0 for rain stations",
        ),
        (one(water_level=1.0, colour="red", depth=2), RejectionCode.BAD_TIME, None),
    ],
)
def test_each_refused_reading_is_kept_with_its_reason(
    reading: dict[str, Any], code: RejectionCode, in_reason: str | None
) -> None:
    if in_reason is None:  # the unknown-fields case: make it fail for another reason too
        reading = reading | {"time": "garbage"}
    verdict = judge({"readings": [reading]})
    assert verdict.readings == []
    [rejection] = verdict.rejections
    assert rejection.code is code
    assert json.loads(rejection.payload) == reading
    assert rejection.gateway == "gw-1"
    if in_reason is not None:
        assert in_reason in rejection.reason
    else:
        assert rejection.reason.endswith("; unknown fields: colour, depth")


def test_station_of_another_gateway_is_refused_as_spoofed() -> None:
    verdict = judge(one(water_level=1.0), topic="hydro/gw-9/readings")
    [rejection] = verdict.rejections
    assert (rejection.code, rejection.station) == (RejectionCode.WRONG_GATEWAY, "60312345")
    assert "'gw-1'" in rejection.reason


def test_stations_without_a_gateway_may_report_through_any() -> None:
    verdict = judge(
        {"station": "60312346", "time": 1778112000, "water_level": 771.0}, "hydro/x/readings"
    )
    assert [r.station for r in verdict.readings] == ["60312346"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_literals_are_bad_values(literal: str) -> None:
    raw = f'{{"station": "60312345", "time": 1778112000, "water_level": {literal}}}'.encode()
    [rejection] = judge(raw).rejections
    assert rejection.code is RejectionCode.BAD_VALUE


def test_a_mixed_batch_keeps_the_good_readings_in_order() -> None:
    verdict = judge(
        {
            "readings": [
                one(water_level=771.0, time="2026-05-07T07:50:00+08:00"),
                one(water_level=-999.0),
                one(water_level=771.2, time="2026-05-07T07:55:00+08:00"),
                {"station": 60312346, "time": 1778112000, "water_level": 771.54},
            ]
        }
    )
    assert [(r.station, r.water_level) for r in verdict.readings] == [
        ("60312345", 771.0),
        ("60312345", 771.2),
        ("60312346", 771.54),  # an integer code is read as its digits
    ]
    assert [r.code for r in verdict.rejections] == [RejectionCode.OUT_OF_BOUNDS]


@pytest.mark.parametrize(
    ("code", "text", "utc"),
    [
        ("60312345", "2026-05-07T08:00:00+08:00", "2026-05-07T00:00:00+00:00"),
        ("60312345", "2026-05-07T00:00:00Z", "2026-05-07T00:00:00+00:00"),
        ("60312345", "2026-05-07T08:00:00", "2026-05-07T00:00:00+00:00"),  # naive: Shanghai
        ("60312345", "2026-05-07 07:55", "2026-05-06T23:55:00+00:00"),
        ("60312345", 1778112000, "2026-05-07T00:00:00+00:00"),  # Unix seconds
        ("80000001", "2026-05-07T02:00:00", "2026-05-07T00:00:00+00:00"),  # naive: Berlin, CEST
        ("80000001", "2025-10-26T02:30:00", "2025-10-26T00:30:00+00:00"),  # ambiguous: first
    ],
)
def test_times_are_read_as_the_contract_says(code: str, text: str | int, utc: str) -> None:
    received = dt.datetime.fromisoformat(utc) + dt.timedelta(minutes=1)
    raw = json.dumps({"station": code, "time": text, "water_level": 1.0}).encode()
    verdict = judge_message(
        TOPIC.replace("gw-1", "gw-1"), raw, received, stations=STATIONS, rules=RULES
    )
    [reading] = verdict.readings
    assert reading.time == dt.datetime.fromisoformat(utc)
    assert reading.time.tzinfo is dt.UTC


def test_a_local_time_in_the_spring_gap_does_not_exist() -> None:
    raw = json.dumps({"station": "80000001", "time": "2026-03-29T02:30:00", "water_level": 1.0})
    received = dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.UTC)
    verdict = judge_message(TOPIC, raw.encode(), received, stations=STATIONS, rules=RULES)
    [rejection] = verdict.rejections
    assert rejection.code is RejectionCode.BAD_TIME
    assert "daylight-saving gap" in rejection.reason


@pytest.mark.parametrize(("minutes", "accepted"), [(9, True), (10, True), (11, False)])
def test_future_limit_is_ten_minutes(minutes: int, accepted: bool) -> None:
    moment = RECEIVED + dt.timedelta(minutes=minutes)
    verdict = judge(one(water_level=1.0, time=moment.isoformat()))
    assert bool(verdict.readings) is accepted


def test_unknown_fields_on_accepted_readings_are_dropped_and_counted() -> None:
    verdict = judge(
        {
            "gateway_fw": "2.1",
            "readings": [
                one(water_level=1.0, signal=-70),
                one(water_level=1.0, signal=-71, time=1778111700),
            ],
        }
    )
    assert len(verdict.readings) == 2
    assert verdict.unknown_fields == {"signal": 2, "gateway_fw": 1}


def test_a_backlog_of_thousands_is_judged_reading_by_reading() -> None:
    start = RECEIVED - dt.timedelta(days=11)  # 3,000 reports span 10.4 days
    readings = [
        one(water_level=770.0 + i / 1000, time=(start + dt.timedelta(minutes=5 * i)).isoformat())
        for i in range(3000)
    ]
    readings[1234]["water_level"] = float("inf")
    raw = json.dumps({"readings": readings}).encode()  # json writes Infinity: must be refused
    verdict = judge_message(TOPIC, raw, RECEIVED, stations=STATIONS, rules=RULES)
    assert len(verdict.readings) == 2999
    assert [r.code for r in verdict.rejections] == [RejectionCode.BAD_VALUE]


@pytest.mark.parametrize(
    ("raw", "code", "in_reason"),
    [
        # Times whose shift to UTC leaves what a datetime can hold (they used to raise).
        (b'"time": "0001-01-01T00:00:00+08:00"', RejectionCode.BAD_TIME, "out of range"),
        (b'"time": "0001-01-01T03:00:00"', RejectionCode.BAD_TIME, "out of range"),
        (b'"time": "9999-12-31T23:59:59-08:00"', RejectionCode.BAD_TIME, "out of range"),
        (b'"time": "0000-01-01T00:00:00"', RejectionCode.BAD_TIME, "date and time"),
        (b'"time": "10000-01-01T00:00:00"', RejectionCode.BAD_TIME, "date and time"),
        (b'"time": ' + b"9" * 40, RejectionCode.BAD_TIME, "Unix time"),
        (b'"time": -99999999999999', RejectionCode.BAD_TIME, "Unix time"),
        # Numbers no double holds (a huge JSON integer used to raise OverflowError).
        (b'"time": 1778112000, "water_level": ' + b"9" * 400, RejectionCode.BAD_VALUE, "double"),
        (b'"time": 1778112000, "water_level": -' + b"9" * 400, RejectionCode.BAD_VALUE, "double"),
        (b'"time": 1778112000, "water_level": 1e400', RejectionCode.BAD_VALUE, "finite"),
        (b'"time": 1778112000, "water_level": 1e308', RejectionCode.OUT_OF_BOUNDS, "above"),
    ],
)
def test_values_at_the_edges_of_their_types_are_refused_not_raised(
    raw: bytes, code: RejectionCode, in_reason: str
) -> None:
    payload = b'{"station": "60312345", ' + raw + b"}"
    if b"water_level" not in payload:
        payload = payload[:-1] + b', "water_level": 1.0}'
    verdict = judge(payload)
    assert verdict.readings == []
    [rejection] = verdict.rejections
    assert rejection.code is code
    assert in_reason in rejection.reason


@pytest.mark.parametrize(
    "raw",
    [
        b'{"station": "\\ud800", "time": 1778112000, "water_level": 1.0}',
        b'{"station": "60312345", "time": "x", "\\udfff\\n": 1}',
        b'{"station": "60312345\\u0000", "time": 1778112000, "water_level": 1.0}',
        b'{"readings": [{"station": "\\ud83d", "time": "\\udca9"}]}',
    ],
)
def test_text_that_cannot_be_encoded_is_refused_and_kept_as_sent(raw: bytes) -> None:
    [rejection] = judge(raw).rejections
    document = json.loads(raw)
    sent = document["readings"][0] if "readings" in document else document
    assert json.loads(rejection.payload) == sent  # the escapes are kept, the bytes are UTF-8
    rejection.payload.decode("utf-8")
    assert rejection.reason.isprintable()  # gateway text in a reason is escaped


@pytest.mark.parametrize(
    ("code", "registry_codes", "outcome"),
    [
        (60312346, ["60312346"], "60312346"),  # digits that are exactly a registry code
        (312345, ["00312345"], RejectionCode.STATION_CODE_NOT_STRING),  # lost its zeros
        (123, ["123", "0123"], RejectionCode.STATION_CODE_NOT_STRING),  # which one was meant?
        (0, ["000"], RejectionCode.STATION_CODE_NOT_STRING),
        (999, ["00312345"], RejectionCode.UNKNOWN_STATION),
        (-123, ["-123", "0123"], "-123"),  # the digits of -123 are exactly "-123"
    ],
)
def test_an_integer_station_code_is_never_read_as_another_station(
    code: int, registry_codes: list[str], outcome: str | RejectionCode
) -> None:
    registry = {c: station(c, gateway=None) for c in registry_codes}
    raw = json.dumps({"station": code, "time": 1778112000, "water_level": 1.0}).encode()
    verdict = judge_message(TOPIC, raw, RECEIVED, stations=registry, rules=RULES)
    if isinstance(outcome, RejectionCode):
        [rejection] = verdict.rejections
        assert rejection.code is outcome
        if outcome is RejectionCode.STATION_CODE_NOT_STRING:
            assert "send the code as a JSON string" in rejection.reason
    else:
        assert [r.station for r in verdict.readings] == [outcome]


def test_the_string_form_of_a_zero_padded_code_is_accepted() -> None:
    registry = {"00312345": station("00312345", gateway=None)}
    raw = json.dumps({"station": "00312345", "time": 1778112000, "water_level": 1.0}).encode()
    verdict = judge_message(TOPIC, raw, RECEIVED, stations=registry, rules=RULES)
    assert [r.station for r in verdict.readings] == ["00312345"]


SMALL = ValidationRules.from_config(
    IngestConfig.model_validate({"max_message_bytes": 2000, "max_message_readings": 3}), "hydro"
)


def test_a_message_over_the_size_limit_is_quarantined_before_parsing_with_a_prefix() -> None:
    raw = json.dumps({"readings": [one(water_level=1.0)] * 40}).encode()
    assert len(raw) > 2000
    verdict = judge_message(TOPIC, raw, RECEIVED, stations=STATIONS, rules=SMALL)
    assert verdict.readings == []
    [rejection] = verdict.rejections
    assert rejection.code is RejectionCode.TOO_LARGE
    assert f"{len(raw)} bytes" in rejection.reason
    assert "ingest.max_message_bytes" in rejection.reason
    assert raw.startswith(rejection.payload)
    assert 0 < len(rejection.payload) <= 1024
    [cut] = judge_message(TOPIC, raw[:2000], RECEIVED, stations=STATIONS, rules=SMALL).rejections
    assert cut.code is RejectionCode.MALFORMED_JSON  # at the limit: judged, not too large


@pytest.mark.parametrize(("count", "refused"), [(3, False), (4, True)])
def test_a_message_with_more_readings_than_the_limit_is_quarantined_whole(
    count: int, refused: bool
) -> None:
    raw = json.dumps({"readings": [{}] * count}).encode()
    verdict = judge_message(TOPIC, raw, RECEIVED, stations=STATIONS, rules=SMALL)
    codes = [r.code for r in verdict.rejections]
    if refused:
        assert codes == [RejectionCode.TOO_LARGE]
        assert "4 readings" in verdict.rejections[0].reason
        assert "ingest.max_message_readings" in verdict.rejections[0].reason
    else:
        assert codes == [RejectionCode.UNKNOWN_STATION] * 3


def test_the_size_limits_have_sensible_floors() -> None:
    defaults = IngestConfig()
    assert (defaults.max_message_bytes, defaults.max_message_readings) == (1_048_576, 20_000)
    with pytest.raises(ValueError, match="max_message_bytes"):
        IngestConfig.model_validate({"max_message_bytes": 100})  # not even one reading's worth
    with pytest.raises(ValueError, match="max_message_readings"):
        IngestConfig.model_validate({"max_message_readings": 0})
