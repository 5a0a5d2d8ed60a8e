"""SL 651-2014 frames, pure: a hand-assembled frame, encoder round trips, splitting and fuzzing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hydro.gateway.sl651.convert import RainCounters, readings_of
from hydro.gateway.sl651.elements import ELEMENTS, SERIES_STEPS
from hydro.gateway.sl651.frame import (
    BEIJING,
    EOT,
    Encoding,
    Frame,
    Problem,
    Reassembler,
    Refused,
    Report,
    Splitter,
    Value,
    crc16,
    decode,
    encode_reply,
    encode_report,
)

DATA = Path(__file__).parents[1] / "data" / "sl651"
AT = dt.datetime(2026, 5, 7, 8, 0, tzinfo=BEIJING)
ADDRESS = "0061901002"


def frames_in(data: bytes) -> list[Frame | Refused]:
    splitter = Splitter()
    return [*splitter.feed(data), *splitter.close()]


def report_of(data: bytes) -> Report:
    (frame,) = frames_in(data)
    assert isinstance(frame, Frame), frame
    report = decode(frame)
    assert isinstance(report, Report), report
    return report


def one_observation(
    function: int,
    observed_at: dt.datetime,
    values: Sequence[tuple[int, Value]],
    *,
    serial: int = 1,
) -> bytes:
    """A report from ADDRESS, sent at AT, of one observation."""
    return encode_report(
        address=ADDRESS,
        function=function,
        serial=serial,
        sent_at=AT,
        observations=[(observed_at, values)],
    )


def hourly(
    *, encoding: Encoding = Encoding.HEX, serial: int = 1, accumulated: float = 12.5
) -> bytes:
    return encode_report(
        address=ADDRESS,
        function=0x34,
        serial=serial,
        sent_at=AT + dt.timedelta(seconds=20),
        observations=[
            (
                AT,
                [
                    (0xF4, [0.0, 0.5, 1.0, 0.0, None, 2.5, 0.0, 0.0, 0.1, 0.0, 0.0, 25.4]),
                    (0xF5, [i * 0.01 for i in range(SERIES_STEPS)]),
                    (0x26, accumulated),
                    (0x39, 771.54),
                    (0x38, 12.6),
                ],
            )
        ],
        password="1234",
        encoding=encoding,
    )


def test_crc_is_crc16_modbus() -> None:
    assert crc16(b"123456789") == 0x4B37  # the catalogue check value of CRC-16/MODBUS


def test_a_hand_assembled_timed_report_is_read_field_by_field() -> None:
    """Built byte by byte from the standard's layout, not by hydro's encoder."""
    body = bytes.fromhex(
        "0007"  # serial number 7
        "260507080012"  # sent 2026-05-07 08:00:12
        "F1F1"
        "0061901002"
        "48"  # station address, category H (river)
        "F0F0"
        "2605070800"  # observed 08:00
        "3923"
        "00771540"  # 39 instantaneous river level, 4 bytes 3 decimals: 771.540 m
        "2019"
        "000015"  # 20 current rainfall, 3 bytes 1 decimal: 1.5 mm
        "2B19"
        "000321"  # 2B (a water-meter element hydro does not store), skipped by length
        "3812"
        "1262"  # 38 supply voltage, 2 bytes 2 decimals: 12.62 V
    )
    header = bytes.fromhex("7E7E010061901002123432") + len(body).to_bytes(2)
    unsigned = header + b"\x02" + body + b"\x03"
    data = unsigned + crc16(unsigned).to_bytes(2)
    report = report_of(data)
    assert (report.frame.centre, report.frame.address, report.frame.password) == (
        1,
        ADDRESS,
        "1234",
    )
    assert (report.frame.function, report.serial, report.category) == (0x32, 7, "H")
    assert report.sent_at == dt.datetime(2026, 5, 7, 8, 0, 12, tzinfo=BEIJING)
    (observation,) = report.observations
    assert observation.time == AT
    assert [(e.identifier, v) for e, v in observation.values] == [
        (0x39, 771.54),
        (0x20, 1.5),
        (0x38, 12.62),
    ]
    assert report.skipped == {"2B": 1}


@pytest.mark.parametrize("path", sorted(DATA.glob("*.hex")), ids=lambda p: p.stem)
def test_recorded_frames_decode_as_their_readme_says(path: Path) -> None:
    expected = dict(
        line.split("=", 1) for line in path.with_suffix(".expect").read_text().splitlines()
    )
    report = report_of(bytes.fromhex(path.read_text()))
    readings, _ = readings_of(report, report.frame.address, RainCounters())
    assert report.frame.address == expected["address"]
    assert len(readings) == int(expected["readings"])
    assert readings[-1]["time"] == expected["last_time"]


@pytest.mark.parametrize("encoding", list(Encoding))
def test_every_supported_element_survives_a_round_trip(encoding: Encoding) -> None:
    values: list[tuple[int, float | list[float | None]]] = []
    for element in ELEMENTS:
        if element.identifier == 0xF4:
            values.append((0xF4, [0.1 * i for i in range(SERIES_STEPS)]))
        elif element.identifier == 0xF5:
            values.append((0xF5, [None, *[0.01 * i for i in range(1, SERIES_STEPS)]]))
        else:
            digits = element.length * 2 - 1
            values.append((element.identifier, round(10 ** (digits - element.decimals) / 3, 1)))
    values.append((0x39, -1.25))  # negative: a first byte FF
    data = encode_report(
        address=ADDRESS,
        function=0x32,
        serial=65535,
        sent_at=AT,
        observations=[(AT, values)],
        encoding=encoding,
    )
    report = report_of(data)
    assert report.serial == 65535
    stored = [(e.identifier, v) for e, v in values_of(report)]
    expected = [
        (i, tuple(v) if isinstance(v, list) else v)
        for i, v in values
        if next(e for e in ELEMENTS if e.identifier == i).field is not None
    ]
    assert [(i, _rounded(v)) for i, v in stored] == [(i, _rounded(v)) for i, v in expected]
    assert sum(report.skipped.values()) == sum(1 for e in ELEMENTS if e.field is None)


def values_of(report: Report) -> list[tuple[object, float | tuple[float | None, ...]]]:
    return [pair for observation in report.observations for pair in observation.values]


def _rounded(value: object) -> object:
    if isinstance(value, tuple):
        return tuple(None if v is None else round(v, 3) for v in value)
    assert isinstance(value, float | int)
    return round(value, 3)


@pytest.mark.parametrize("encoding", list(Encoding))
def test_an_hourly_report_becomes_twelve_readings_ending_at_the_observation_time(
    encoding: Encoding,
) -> None:
    counters = RainCounters()
    readings, skipped = readings_of(report_of(hourly(encoding=encoding)), "61901002", counters)
    assert len(readings) == 12
    assert readings[0]["time"] == "2026-05-07T07:05:00+08:00"
    assert readings[-1] == {
        "station": "61901002",
        "time": "2026-05-07T08:00:00+08:00",
        "rainfall": 25.4,
        "water_level": 771.54,
        "battery_v": 12.6,
    }
    assert "rainfall" not in readings[4]  # FF: no value for that 5 minutes
    assert readings[0]["water_level"] == pytest.approx(771.54 - 0.11)
    assert not skipped


def test_accumulated_rainfall_is_differenced_with_resets_and_resends() -> None:
    counters = RainCounters()
    station = "61901002"

    def rain(minute: int, counter: float) -> float | None:
        return counters.since_previous(station, AT + dt.timedelta(minutes=minute), counter)

    assert rain(0, 100.0) is None  # first after a start: a baseline, no guess
    assert rain(5, 101.5) == 1.5
    assert rain(5, 101.5) == 1.5  # the same frame sent again: the same amount
    assert rain(0, 100.0) is None  # an older frame: no amount rather than a wrong one
    assert rain(10, 0.5) == 0.5  # the counter was reset: counts from zero
    assert rain(15, 0.5) == 0.0


def test_accumulated_counter_gives_rainfall_from_the_second_report_on() -> None:
    counters = RainCounters()
    frame = one_observation(0x32, AT, [(0x26, 10.0), (0x39, 1.0)])
    later = one_observation(0x32, AT + dt.timedelta(hours=1), [(0x26, 12.5), (0x39, 1.0)], serial=2)
    first, _ = readings_of(report_of(frame), "s", counters)
    second, _ = readings_of(report_of(later), "s", counters)
    assert "rainfall" not in first[0]
    assert second[0]["rainfall"] == 2.5


def test_a_counter_without_an_amount_falls_back_to_the_current_rain() -> None:
    frame = one_observation(0x33, AT, [(0x26, 10.0), (0x20, 0.5)])
    readings, _ = readings_of(report_of(frame), "s", RainCounters())
    assert readings[0]["rainfall"] == 0.5


def test_link_keeping_and_voltage_only_reports_carry_no_reading() -> None:
    data = one_observation(0x2F, AT, [(0x38, 12.1)], serial=3)
    readings, skipped = readings_of(report_of(data), "s", RainCounters())
    assert readings == []
    assert skipped == {"voltage_only": 1}


def test_two_frames_in_one_segment_and_one_frame_in_many() -> None:
    one, two = hourly(serial=1), hourly(serial=2, encoding=Encoding.ASCII)
    splitter = Splitter()
    got = splitter.feed(one + two)
    assert [type(f) for f in got] == [Frame, Frame]
    pieces: list[Frame | Refused] = []
    for byte in one:
        pieces += splitter.feed(bytes([byte]))
    assert len(pieces) == 1
    assert isinstance(pieces[0], Frame)
    assert pieces[0].raw == one
    assert splitter.pending == 0


def test_a_bad_frame_costs_nothing_that_follows_it() -> None:
    good = hourly()
    corrupt = bytearray(good)
    corrupt[30] ^= 0x10
    items = frames_in(b"junk" + bytes(corrupt) + good + good[:20])
    problems = [i.problem for i in items if isinstance(i, Refused)]
    assert problems == [Problem.NO_FRAME_START, Problem.BAD_CRC, Problem.TRUNCATED]
    assert sum(isinstance(i, Frame) for i in items) == 1


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda b: b[:3] + bytes.fromhex("AA") + b[4:], Problem.BAD_CRC),  # BCD nibble A, CRC off
        (lambda b: b[:13] + b"\x09" + b[14:], Problem.BAD_HEADER),
        (lambda b: b[:11] + bytes([0x80 | b[11]]) + b[12:], Problem.BAD_HEADER),
        (lambda b: b[:-4] + b"\x09" + b[-3:], Problem.BAD_CRC),
    ],
)
def test_each_bad_frame_gives_its_reason(mutate: object, problem: Problem) -> None:
    assert callable(mutate)
    items = frames_in(mutate(hourly()))
    assert isinstance(items[0], Refused)
    assert items[0].problem is problem


def test_impossible_bcd_behind_a_good_crc_is_refused_as_such() -> None:
    frame = one_observation(0x32, AT, [(0x39, 1.0)])
    body = bytearray(frame[14:-3])
    body[-1] = 0xA0  # the level's last BCD byte
    header = bytearray(frame[:14])
    unsigned = bytes(header) + bytes(body) + b"\x03"
    refused = decode(_only_frame(unsigned + crc16(unsigned).to_bytes(2)))
    assert isinstance(refused, Refused)
    assert refused.problem is Problem.BAD_BCD


def _only_frame(data: bytes) -> Frame:
    (frame,) = frames_in(data)
    assert isinstance(frame, Frame)
    return frame


def test_a_truncated_body_is_refused() -> None:
    body = bytes.fromhex("0001260507080000F1F1006190100248F0F026050708003923007715")
    header = bytes.fromhex("7E7E0100619010021234") + b"\x32" + len(body).to_bytes(2) + b"\x02"
    unsigned = header + body + b"\x03"
    refused = decode(_only_frame(unsigned + crc16(unsigned).to_bytes(2)))
    assert isinstance(refused, Refused)
    assert refused.problem is Problem.TRUNCATED


def test_multi_packet_messages_are_joined() -> None:
    whole = hourly()
    body = whole[14:-3]
    half = len(body) // 2
    packets = []
    for sequence, (part, end) in enumerate(((body[:half], 0x17), (body[half:], 0x03)), 1):
        numbers = ((2 << 12) | sequence).to_bytes(3)
        header = bytearray(whole[:14])
        header[11:13] = (len(part) + 3).to_bytes(2)
        header[13] = 0x16
        unsigned = bytes(header) + numbers + part + bytes([end])
        packets.append(unsigned + crc16(unsigned).to_bytes(2))
    reassembler = Reassembler()
    first, second = (_only_frame(p) for p in packets)
    assert reassembler.add(first) is None
    (unfinished,) = reassembler.close()  # the connection ended between the packets
    assert unfinished.problem is Problem.TRUNCATED
    assert unfinished.raw == packets[0]
    assert reassembler.add(second) is None  # out of order is fine
    joined = reassembler.add(first)
    assert isinstance(joined, Frame)
    assert joined.body == body
    report = decode(joined)
    assert isinstance(report, Report)
    assert len(readings_of(report, "s", RainCounters())[0]) == 12


def test_packets_that_disagree_on_their_count_are_refused() -> None:
    def packet(count: int, sequence: int) -> Frame:
        return Frame(Encoding.HEX, 1, ADDRESS, "0000", 0x34, (count, sequence), b"x", 0x17, b"raw")

    reassembler = Reassembler()
    assert reassembler.add(packet(3, 3)) is None
    refused = reassembler.add(packet(2, 1))  # once raised KeyError and ended the connection
    assert isinstance(refused, Refused)
    assert refused.problem is Problem.BAD_HEADER


@pytest.mark.parametrize("encoding", list(Encoding))
def test_the_reply_echoes_the_serial_and_is_a_down_link_frame(encoding: Encoding) -> None:
    frame = _only_frame(hourly(serial=513, encoding=encoding))
    reply = encode_reply(frame, AT)
    if encoding is Encoding.HEX:
        assert reply[:8] == bytes.fromhex("7E7E0061901002") + b"\x01"
        assert reply[11] >> 4 == 8
        assert reply[14:16] == (513).to_bytes(2)
        assert reply[-3] == EOT
        assert crc16(reply[:-2]) == int.from_bytes(reply[-2:])
    else:
        assert reply.startswith(b"\x01" + ADDRESS.encode() + b"01" + b"1234" + b"34" + b"8")
        assert reply[24:28] == b"0201"
        assert int(reply[-4:], 16) == crc16(reply[:-4])


_valid = st.sampled_from(
    [hourly(), hourly(encoding=Encoding.ASCII), hourly(serial=9, accumulated=99.9)]
)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    frame = bytearray(draw(_valid))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "cut", "insert", "drop"]))
        index = draw(st.integers(0, len(frame) - 1))
        if action == "flip":
            frame[index] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del frame[index:]
        elif action == "insert":
            frame[index:index] = draw(st.binary(min_size=1, max_size=8))
        elif len(frame) > 1:
            del frame[index]
        if not frame:
            frame = bytearray(b"\x7e")
    return bytes(frame)


_FUZZ = settings(
    max_examples=400,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)


@_FUZZ
@given(data=st.one_of(st.binary(max_size=300), _mutated()), cuts=st.lists(st.integers(0, 300)))
def test_fuzzed_streams_never_raise_and_every_byte_is_accounted_for(
    data: bytes, cuts: list[int]
) -> None:
    splitter = Splitter()
    items: list[Frame | Refused] = []
    previous = 0
    for cut in sorted({c for c in cuts if c < len(data)}):
        items += splitter.feed(data[previous:cut])
        previous = cut
    items += splitter.feed(data[previous:])
    items += splitter.close()
    assert b"".join(i.raw for i in items) == data  # nothing dropped, nothing invented
    for item in items:
        if isinstance(item, Refused):
            assert item.reason
            continue
        report = decode(item)
        if isinstance(report, Refused):
            assert report.reason
        else:
            readings_of(report, "s", RainCounters())
