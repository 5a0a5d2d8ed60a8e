"""PostgreSQL's binary wire format for a batch of readings, built in one pass per batch.

psycopg dumps a COPY row, and every element of an array parameter, through a generic dumper
call: at 5,000 readings a batch that was most of the writer's time (the journal and the
per-station latest reading alone are ten arrays). A batch of readings repeats a few thousand
station codes and a few distinct times, so their encodings are cached, and a float is one
``struct`` call. The arrays go to psycopg as already-encoded parameters (:class:`TextArray`,
:class:`TimestamptzArray`, :class:`Float8Array`) with the oid of their type.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Iterable, Sequence

from psycopg import adapters
from psycopg.adapt import Buffer, Dumper
from psycopg.pq import Format

from hydro.models import Reading

_PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_NULL = b"\xff\xff\xff\xff"  # a field or element of length -1
_FLOAT = struct.Struct(">id").pack  # length 8, then the IEEE double
_TIME = struct.Struct(">iq").pack  # length 8, then microseconds since 2000-01-01 UTC
_SIZED = struct.Struct(">i").pack
_ARRAY_HEAD = struct.Struct(">iiiii").pack  # dimensions, has nulls, element oid, length, lower
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no header extension
_COPY_TRAILER = b"\xff\xff"
_ROW_FIELDS = struct.pack(">h", len(Reading._fields))

_TEXT_OID, _TIMESTAMPTZ_OID, _FLOAT8_OID = 25, 1184, 701


class BatchEncoder:
    """Encodes one batch; remembers each station code and time it has encoded."""

    __slots__ = ("_codes", "_times")

    def __init__(self) -> None:
        self._codes: dict[str, bytes] = {}
        self._times: dict[dt.datetime, bytes] = {}

    def code(self, station: str) -> bytes:
        encoded = self._codes.get(station)
        if encoded is None:
            utf8 = station.encode()
            encoded = self._codes[station] = _SIZED(len(utf8)) + utf8
        return encoded

    def time(self, moment: dt.datetime) -> bytes:
        encoded = self._times.get(moment)
        if encoded is None:
            encoded = self._times[moment] = _TIME(8, (moment - _PG_EPOCH) // _MICROSECOND)
        return encoded

    def copy_data(self, readings: Iterable[Reading]) -> bytes:
        """The whole ``COPY ... (FORMAT BINARY)`` stream of ``readings``, in column order."""
        code, time = self.code, self.time
        parts = [_COPY_HEADER]
        append = parts.append
        for station, moment, water_level, flow, rainfall, battery_v in readings:
            append(
                b"".join(
                    (
                        _ROW_FIELDS,
                        code(station),
                        time(moment),
                        _NULL if water_level is None else _FLOAT(8, water_level),
                        _NULL if flow is None else _FLOAT(8, flow),
                        _NULL if rainfall is None else _FLOAT(8, rainfall),
                        _NULL if battery_v is None else _FLOAT(8, battery_v),
                    )
                )
            )
        append(_COPY_TRAILER)
        return b"".join(parts)

    def texts(self, values: Sequence[str]) -> TextArray:
        return TextArray(_array(_TEXT_OID, list(map(self.code, values)), has_null=False))

    def times(self, values: Sequence[dt.datetime]) -> TimestamptzArray:
        encoded = list(map(self.time, values))
        return TimestamptzArray(_array(_TIMESTAMPTZ_OID, encoded, has_null=False))


def floats(values: Sequence[float | None]) -> Float8Array:
    encoded = [_NULL if v is None else _FLOAT(8, v) for v in values]
    return Float8Array(_array(_FLOAT8_OID, encoded, has_null=None in values))


def _array(element_oid: int, encoded: list[bytes], *, has_null: bool) -> bytes:
    if not encoded:
        return struct.pack(">iii", 0, 0, element_oid)
    return _ARRAY_HEAD(1, has_null, element_oid, len(encoded), 1) + b"".join(encoded)


class TextArray(bytes):
    """A ``text[]`` in binary form."""


class TimestamptzArray(bytes):
    """A ``timestamptz[]`` in binary form."""


class Float8Array(bytes):
    """A ``float8[]`` in binary form."""


class _AsIs(Dumper):
    format = Format.BINARY

    def dump(self, obj: Buffer) -> Buffer:
        return obj


class _TextArrayDumper(_AsIs):
    oid = 1009


class _TimestamptzArrayDumper(_AsIs):
    oid = 1185


class _Float8ArrayDumper(_AsIs):
    oid = 1022


adapters.register_dumper(TextArray, _TextArrayDumper)
adapters.register_dumper(TimestamptzArray, _TimestamptzArrayDumper)
adapters.register_dumper(Float8Array, _Float8ArrayDumper)
