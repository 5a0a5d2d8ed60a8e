"""Judging a gateway message: which readings hydro stores, which it quarantines and why.

Pure and on the hot path: bytes and registry objects in, a :class:`Verdict` out, no I/O. Each
reading is judged on its own, so one bad value never costs a batch its good readings.

Judging is total: whatever bytes arrive, each reading is accepted or refused with a reason. An
exception here would leave the message unacknowledged, redelivered at every start, and stop the
ingest of every gateway; ``tests/unit/test_ingest_fuzz.py`` holds the code to that.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import compress, repeat
from operator import attrgetter, is_not
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from hydro.config import IngestConfig
from hydro.models import (
    Reading,
    Rejection,
    RejectionCode,
    Station,
    StationKind,
    Variable,
)

MEASUREMENTS = (Variable.WATER_LEVEL, Variable.FLOW, Variable.RAINFALL)
_KNOWN_FIELDS = frozenset({"station", "time", *(v.value for v in Variable)})
KEPT_PREFIX = 1024  # bytes of an oversized message kept in the quarantine


def printable(text: str) -> str:
    """Gateway text as it may go into a log line or a reason: line breaks, control characters and
    lone surrogates escaped as in a Python literal, so no gateway can forge a log line."""
    return text if text.isprintable() else repr(text)[1:-1]


def zero_padded_codes(stations: Mapping[str, Station]) -> dict[str, tuple[str, ...]]:
    """Registry codes with leading zeros, by the digits a JSON integer for them would keep."""
    padded: dict[str, list[str]] = {}
    for code in stations:
        if code.startswith("0") and code.isascii() and code.isdigit():
            padded.setdefault(code.lstrip("0") or "0", []).append(code)
    return {digits: tuple(codes) for digits, codes in padded.items()}


@dataclass(frozen=True)
class ValidationRules:
    """Everything judging needs besides the registry, resolved once so lookups are cheap."""

    topic_prefix: str
    max_future: dt.timedelta
    max_past: dt.timedelta
    # Per kind, (variable, min, max) in the order of Reading's fields.
    bounds: Mapping[StationKind, tuple[tuple[str, float, float], ...]]
    max_message_bytes: int
    max_message_readings: int

    @classmethod
    def from_config(cls, config: IngestConfig, topic_prefix: str) -> ValidationRules:
        bounds = {}
        for kind in StationKind:
            by_variable = config.bounds_for(kind)
            bounds[kind] = tuple(
                (v.value, by_variable[v].min, by_variable[v].max) for v in Variable
            )
        return cls(
            topic_prefix,
            config.max_future,
            config.max_past,
            bounds,
            max_message_bytes=config.max_message_bytes,
            max_message_readings=config.max_message_readings,
        )


@dataclass(frozen=True)
class Verdict:
    gateway: str | None
    readings: list[Reading] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    unknown_fields: Counter[str] = field(default_factory=Counter)


class _Refused(Exception):
    """Internal: one reading refused; carries the code, the reason and the station if known."""

    def __init__(self, code: RejectionCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def gateway_of(topic: str, topic_prefix: str) -> str | None:
    """The gateway id of ``<prefix>/<gateway>/readings``, or None for any other topic."""
    parts = topic.split("/")
    prefix_parts = topic_prefix.split("/")
    if (
        len(parts) != len(prefix_parts) + 2
        or parts[: len(prefix_parts)] != prefix_parts
        or parts[-1] != "readings"
        or not parts[-2]
    ):
        return None
    return parts[-2]


def judge_message(
    topic: str,
    payload: bytes,
    received_at: dt.datetime,
    *,
    stations: Mapping[str, Station],
    rules: ValidationRules,
    zero_padded: Mapping[str, tuple[str, ...]] | None = None,
) -> Verdict:
    """Splits one message into accepted readings and rejections, in the order they came.

    ``zero_padded`` is :func:`zero_padded_codes` of ``stations``, computed once by a caller that
    judges many messages; without it, a message with an integer station code computes it.
    """
    gateway = gateway_of(topic, rules.topic_prefix)

    def whole(code: RejectionCode, reason: str, kept: bytes = payload) -> Verdict:
        return refuse_whole(topic, gateway, kept, code=code, reason=reason, received_at=received_at)

    if len(payload) > rules.max_message_bytes:
        return whole(
            RejectionCode.TOO_LARGE,
            f"payload is {len(payload)} bytes, more than ingest.max_message_bytes"
            f" ({rules.max_message_bytes}); its first {KEPT_PREFIX} bytes are kept",
            payload[:KEPT_PREFIX],
        )
    if gateway is None:
        return whole(
            RejectionCode.BAD_TOPIC,
            f"topic {topic!r} is not {rules.topic_prefix}/<gateway>/readings",
        )
    try:
        document = _fast_json(payload)
    except ValueError:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            return whole(RejectionCode.BAD_ENCODING, f"payload is not UTF-8: {exc}")
        try:
            document = json.loads(text)
        except (ValueError, RecursionError) as exc:  # absurd nesting must not crash the service
            return whole(RejectionCode.MALFORMED_JSON, f"payload is not JSON: {exc}")
    verdict = Verdict(gateway=gateway)
    if isinstance(document, dict) and "readings" in document:
        items = document["readings"]
        if not isinstance(items, list):
            return whole(RejectionCode.BAD_SHAPE, '"readings" must be a list of reading objects')
        if len(items) > rules.max_message_readings:
            return whole(
                RejectionCode.TOO_LARGE,
                f"{len(items)} readings, more than ingest.max_message_readings"
                f" ({rules.max_message_readings}): split the backlog; the first {KEPT_PREFIX}"
                " bytes are kept",
                payload[:KEPT_PREFIX],
            )
        verdict.unknown_fields.update(key for key in document if key != "readings")
    elif isinstance(document, dict) and "station" in document:
        items = [document]
    else:
        return whole(
            RejectionCode.BAD_SHAPE,
            'payload must be a reading object or {"readings": [...]}',
        )
    plain = _plain_readings(items, gateway, received_at, stations, rules)
    if plain is not None:
        verdict.readings.extend(plain)
        return verdict
    judge = _ReadingJudge(
        topic,
        gateway,
        received_at,
        stations=stations,
        rules=rules,
        verdict=verdict,
        zero_padded=zero_padded,
    )
    for item in items:
        judge.judge(item)
    return verdict


def judge_entry(
    item: Mapping[str, Any],
    received_at: dt.datetime,
    *,
    stations: Mapping[str, Station],
    rules: ValidationRules,
) -> Reading | Rejection:
    """One reading an operator typed in, judged exactly as a gateway's reading object is (the
    station, the time window, bounds, at least one measurement), as if from the station's own
    gateway: what a gateway may not do, an operator may not either."""
    code = item.get("station")
    station = stations.get(code) if isinstance(code, str) else None
    gateway = (station.gateway if station else None) or "manual"
    verdict = Verdict(gateway=gateway)
    _ReadingJudge(
        "manual",
        gateway,
        received_at,
        stations=stations,
        rules=rules,
        verdict=verdict,
        zero_padded=None,
    ).judge(dict(item))
    return verdict.readings[0] if verdict.readings else verdict.rejections[0]


def _plain_readings(
    items: list[Any],
    gateway: str,
    received_at: dt.datetime,
    stations: Mapping[str, Station],
    rules: ValidationRules,
) -> list[Reading] | None:
    """The readings of a message that :class:`_ReadingJudge` would accept whole and as they are,
    judged a field at a time across the message; None when any item is not plainly good.

    Plainly good: a JSON object of known fields only, a string code of this gateway's, a text
    time in the window, every value absent or a float within its kind's bounds, one of them a
    measurement. That is what gateways send; anything else (and every refusal, with its reason)
    is left to the reading-by-reading judge. Each step is a C-level pass over one field, not
    Python work per reading, which is what makes a 100-reading message cheap.
    """
    if set(map(type, items)) != {dict} or not all(map(_KNOWN_FIELDS.issuperset, items)):
        return None
    codes: list[Any] = list(map(dict.get, items, repeat("station")))
    if set(map(type, codes)) != {str}:
        return None
    found = list(map(stations.get, codes))
    if not all(found) or not set(map(_GATEWAY, found)) <= {None, gateway}:
        return None  # "" is no registry code: an empty code is refused by the judge
    raw_times = list(map(dict.get, items, repeat("time")))
    if set(map(type, raw_times)) != {str}:
        return None
    try:
        times = list(map(_remembered_time, raw_times, map(_ZONE, found)))
    except _Refused:
        return None
    if min(times) < received_at - rules.max_past or max(times) > received_at + rules.max_future:
        return None
    columns = [list(map(dict.get, items, repeat(name))) for name in _VALUE_FIELDS]
    if (None, None, None) in zip(*columns[:3], strict=True):
        return None  # no measurement
    kinds = list(map(_KIND, found))
    bounds = [rules.bounds[kind] for kind in dict.fromkeys(kinds)]
    for index, column in enumerate(columns):
        if not set(map(type, column)) <= {float, type(None)}:
            return None
        ranges = {b[index][1:] for b in bounds}
        if len(ranges) == 1:
            if not _within(column, *ranges.pop()):
                return None
            continue
        for kind in dict.fromkeys(kinds):
            of_kind = list(compress(column, map(kind.__eq__, kinds)))
            if not _within(of_kind, *rules.bounds[kind][index][1:]):
                return None
    return list(map(_READING, repeat(Reading), zip(codes, times, *columns, strict=True)))


def _within(column: Sequence[Any], low: float, high: float) -> bool:
    """Every float of the column within [low, high] (None is absent, not out of bounds)."""
    values: list[float] = list(filter(_IS_VALUE, column))
    if not values:
        return True
    total = sum(values)
    # NaN, which min and max cannot order, makes the sum NaN; so do -inf and +inf together,
    # and those are out of bounds anyway.
    return not math.isnan(total) and low <= min(values) and max(values) <= high


_VALUE_FIELDS = tuple(v.value for v in Variable)  # Reading's order after station and time
_GATEWAY = attrgetter("gateway")
_ZONE = attrgetter("tz")
_KIND = attrgetter("kind")
_IS_VALUE = partial(is_not, None)
_READING = tuple.__new__  # Reading's own __new__ is Python code; the fields are already in order


def _fast_json(payload: bytes) -> Any:
    """The document as ``json.loads`` reads it, about five times faster, or ValueError where the
    standard library must decide: orjson refuses what json reads (NaN, lone surrogates, an integer
    past 64 bits; it reads some as floats instead, so any run of 20 digits goes to json) and its
    error texts differ from the ones the quarantine has always given."""
    # Every digit made "0": a run of 20 digits is then a run of 20 zeros, found by a plain
    # substring search; a regular expression took longer than orjson's whole parse.
    if _TWENTY_DIGITS in payload.translate(_DIGITS_AS_ZERO):
        raise ValueError("an integer orjson may not keep exact")
    return orjson.loads(payload)


_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_TWENTY_DIGITS = b"0" * 20


def refuse_whole(
    topic: str,
    gateway: str | None,
    payload: bytes,
    *,
    code: RejectionCode,
    reason: str,
    received_at: dt.datetime,
) -> Verdict:
    """A message refused as a whole, kept with ``payload``: its bytes, or a prefix of them."""
    rejection = Rejection(
        topic=topic,
        gateway=gateway or "",
        payload=payload,
        code=code,
        reason=reason,
        received_at=received_at,
    )
    return Verdict(gateway=gateway, rejections=[rejection])


class _ReadingJudge:
    """Judges the readings of one message, appending each to the message's verdict."""

    __slots__ = (
        "_earliest",
        "_latest",
        "_zero_padded",
        "gateway",
        "received_at",
        "rules",
        "stations",
        "topic",
        "verdict",
    )

    def __init__(
        self,
        topic: str,
        gateway: str,
        received_at: dt.datetime,
        *,
        stations: Mapping[str, Station],
        rules: ValidationRules,
        verdict: Verdict,
        zero_padded: Mapping[str, tuple[str, ...]] | None,
    ) -> None:
        self.topic = topic
        self.gateway = gateway
        self.received_at = received_at
        self.stations = stations
        self.rules = rules
        self.verdict = verdict
        self._earliest = received_at - rules.max_past
        self._latest = received_at + rules.max_future
        self._zero_padded = zero_padded

    def judge(self, item: Any) -> None:
        gateway, topic, received_at, rules, verdict = (
            self.gateway,
            self.topic,
            self.received_at,
            self.rules,
            self.verdict,
        )
        station_code: str | None = None
        unknown: list[str] = []
        try:
            if not isinstance(item, dict):
                raise _Refused(RejectionCode.BAD_SHAPE, "a reading must be a JSON object")
            unknown = [key for key in item if key not in _KNOWN_FIELDS]
            raw_code = item.get("station")
            if isinstance(raw_code, str) and raw_code:
                station_code = raw_code
            elif isinstance(raw_code, int) and not isinstance(raw_code, bool):
                station_code = self._integer_code(raw_code)
            else:
                raise _Refused(
                    RejectionCode.UNKNOWN_STATION, "station code missing or not a string"
                )
            station = self.stations.get(station_code)
            if station is None:
                raise _Refused(
                    RejectionCode.UNKNOWN_STATION,
                    f"station {station_code!r} is not in the registry",
                )
            if station.gateway is not None and station.gateway != gateway:
                raise _Refused(
                    RejectionCode.WRONG_GATEWAY,
                    f"station {station_code} reports through gateway {station.gateway!r},"
                    f" not {gateway!r}",
                )
            time = self._time(item.get("time"), station)
            if time > self._latest:
                raise _Refused(
                    RejectionCode.FUTURE_TIME,
                    f"time {time.isoformat()} is more than {rules.max_future} after it was"
                    f" received ({received_at.isoformat()})",
                )
            if time < self._earliest:
                raise _Refused(
                    RejectionCode.TOO_OLD,
                    f"time {time.isoformat()} is more than {rules.max_past} before it was received",
                )
            values = _values(item, station.kind, rules.bounds[station.kind])
        except _Refused as refused:
            reason = refused.reason
            if unknown:
                reason += f"; unknown fields: {', '.join(map(printable, unknown))}"
            verdict.rejections.append(
                Rejection(
                    topic=topic,
                    gateway=gateway,
                    payload=_encode(item),
                    code=refused.code,
                    reason=reason,
                    received_at=received_at,
                    station=station_code,
                )
            )
            return
        if unknown:
            verdict.unknown_fields.update(unknown)
        verdict.readings.append(Reading(station_code, time, *values))

    def _integer_code(self, raw: int) -> str:
        """A JSON integer's digits, unless a registry code with leading zeros reads the same:
        the gateway may have meant it, and a reading must never be stored under another station.
        """
        digits = str(raw)
        if self._zero_padded is None:
            self._zero_padded = zero_padded_codes(self.stations)
        padded = self._zero_padded.get(digits)
        if padded:
            raise _Refused(
                RejectionCode.STATION_CODE_NOT_STRING,
                f"station sent as the number {digits}, which registry code"
                f" {' or '.join(padded)} also reads as: send the code as a JSON string",
            )
        return digits

    def _time(self, raw: Any, station: Station) -> dt.datetime:
        if isinstance(raw, (str, int)):
            return _remembered_time(raw, station.tz)
        return _reading_time(raw, station.tz)


def _encode(item: Any) -> bytes:
    try:
        return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:  # a lone surrogate, which came escaped: it is kept escaped
        return json.dumps(item, separators=(",", ":")).encode()


# Gateways report many stations at the same few times, one message or a hundred per time: parsed
# times are remembered across messages (typed: True is not the time 1).
@functools.lru_cache(maxsize=16384, typed=True)
def _remembered_time(raw: str | int, zone: ZoneInfo) -> dt.datetime:
    return _reading_time(raw, zone)


def _reading_time(raw: Any, zone: ZoneInfo) -> dt.datetime:
    """Reads the ``time`` field as an aware UTC datetime.

    A local time without an offset is read in the station's zone. In a zone with daylight saving,
    a time inside the spring-forward gap does not exist and is refused; one inside the autumn
    overlap is ambiguous and read as its first occurrence (fold=0). Gateways in such zones should
    send offsets.
    """
    if isinstance(raw, int) and not isinstance(raw, bool):
        try:
            return dt.datetime.fromtimestamp(raw, dt.UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise _Refused(RejectionCode.BAD_TIME, f"time {raw} is not a Unix time") from exc
    if not isinstance(raw, str):
        raise _Refused(RejectionCode.BAD_TIME, "time missing: ISO 8601 text or Unix seconds")
    # fromisoformat also takes a bare date ("2026-05-07") and week dates; a reading needs a
    # time of day, so require the separator between date and time.
    if len(raw) < 16 or raw[10] not in "T ":
        raise _Refused(RejectionCode.BAD_TIME, f"time {raw!r} is not an ISO 8601 date and time")
    try:
        parsed = dt.datetime.fromisoformat(raw)
    except ValueError as exc:
        raise _Refused(
            RejectionCode.BAD_TIME, f"time {raw!r} is not an ISO 8601 date and time"
        ) from exc
    try:
        if parsed.tzinfo is None:
            local = parsed.replace(tzinfo=zone)
            # A wall time in a DST gap does not survive the round trip through UTC.
            if local.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None) != parsed:
                raise _Refused(
                    RejectionCode.BAD_TIME,
                    f"local time {raw!r} does not exist in {zone.key} (daylight-saving gap)",
                )
            parsed = local
        return parsed.astimezone(dt.UTC)
    except OverflowError as exc:  # year 1 east of Greenwich, 9999 west of it
        raise _Refused(
            RejectionCode.BAD_TIME, f"time {raw!r} is out of range once shifted to UTC"
        ) from exc


def _values(
    item: Mapping[str, Any], kind: StationKind, bounds: Sequence[tuple[str, float, float]]
) -> list[float | None]:
    """The variables in Reading's order; a plain float within bounds is the fast path."""
    values: list[float | None] = []
    for name, low, high in bounds:
        value = item.get(name)
        if value is None or (type(value) is float and low <= value <= high):
            values.append(value)
        else:
            values.append(_checked_value(name, value, low, high, kind))
    if values[0] is None and values[1] is None and values[2] is None:
        raise _Refused(
            RejectionCode.NO_MEASUREMENT, "none of water_level, flow, rainfall is present"
        )
    return values


def _checked_value(name: str, value: object, low: float, high: float, kind: StationKind) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Refused(RejectionCode.BAD_VALUE, f"{name} {value!r} is not a number")
    try:
        number = float(value)
    except OverflowError as exc:  # a JSON integer of hundreds of digits
        raise _Refused(RejectionCode.BAD_VALUE, f"{name} is an integer no double can hold") from exc
    if not math.isfinite(number):
        raise _Refused(RejectionCode.BAD_VALUE, f"{name} is {value}, not a finite number")
    if number < low:
        raise _Refused(
            RejectionCode.OUT_OF_BOUNDS,
            f"{name} {number} is below the plausible minimum {low} for {kind} stations",
        )
    if number > high:
        raise _Refused(
            RejectionCode.OUT_OF_BOUNDS,
            f"{name} {number} is above the plausible maximum {high} for {kind} stations",
        )
    return number
