"""PostgreSQL's binary wire format for a batch of readings, each field encoded once per batch.

psycopg dumps a COPY row, and every element of an array parameter, through a generic dumper
call: at 5,000 readings a batch that was most of the writer's time (the journal and the
per-station latest reading alone are ten arrays). A COPY field and an array element are encoded
alike (a length, then the value; length -1 for NULL), so each field of each reading is encoded
once, into :class:`EncodedReadings`, and the COPY stream and every array parameter are joined from
those bytes. A batch repeats a few thousand station codes and a few distinct times, so their
encodings are cached, and a float column is one ``struct`` call per value. The arrays go to
psycopg as already-encoded parameters (:class:`TextArray`, :class:`TimestamptzArray`,
:class:`Float8Array`) with the oid of their type.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, compress, repeat

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


@dataclass(frozen=True, slots=True)
class EncodedReadings:
    """Each field of each reading of a batch, encoded: one list per field in Reading's order."""

    fields: tuple[list[bytes], ...]

    def __len__(self) -> int:
        return len(self.fields[0])

    def copy_data(self) -> bytes:
        """The whole ``COPY ... (FORMAT BINARY)`` stream, in column order."""
        rows = zip(repeat(_ROW_FIELDS), *self.fields)
        return b"".join(chain((_COPY_HEADER,), chain.from_iterable(rows), (_COPY_TRAILER,)))

    def having(self, values: Sequence[int]) -> EncodedReadings:
        """The readings with any of the ``values`` fields (by index in Reading) not NULL."""
        present = (map(_NULL.__ne__, self.fields[i]) for i in values)
        keep = list(map(any, zip(*present, strict=True)))
        return self if all(keep) else self.where(keep)

    def where(self, keep: Sequence[bool]) -> EncodedReadings:
        """The readings at the positions ``keep`` marks."""
        return EncodedReadings(tuple(list(compress(field, keep)) for field in self.fields))

    def at(self, positions: Sequence[int]) -> EncodedReadings:
        """The readings at ``positions``, in that order."""
        return EncodedReadings(
            tuple(list(map(field.__getitem__, positions)) for field in self.fields)
        )

    def arrays(
        self, values: Sequence[int]
    ) -> tuple[TextArray | TimestamptzArray | Float8Array, ...]:
        """Station, time and the ``values`` fields (by index in Reading) as array parameters."""
        fields = self.fields
        return (
            TextArray(_array(_TEXT_OID, fields[0], has_null=False)),
            TimestamptzArray(_array(_TIMESTAMPTZ_OID, fields[1], has_null=False)),
            *(
                Float8Array(_array(_FLOAT8_OID, fields[i], has_null=_NULL in fields[i]))
                for i in values
            ),
        )


class BatchEncoder:
    """Encodes one batch; remembers each time it has encoded, so that readings the batch writes
    twice (the slow path's staging table, then what changed) cost them once. ``codes``: the
    station codes already encoded, which a writer keeps across batches (they are the registry's:
    encoding a few thousand of them per batch cost more than the rest of the encoding)."""

    __slots__ = ("_codes", "_times")

    def __init__(self, codes: dict[str, bytes]) -> None:
        self._codes = codes
        self._times: dict[dt.datetime, bytes] = {}

    def encode(
        self,
        stations: Sequence[str],
        times: Sequence[dt.datetime],
        values: Sequence[Sequence[float | None]],
    ) -> EncodedReadings:
        """The fields of a batch given as columns: ``values`` are water_level to battery_v."""
        codes, moments = self._codes, self._times
        for station in set(stations).difference(codes):
            utf8 = station.encode()
            codes[station] = _SIZED(len(utf8)) + utf8
        for moment in set(times).difference(moments):
            moments[moment] = _TIME(8, (moment - _PG_EPOCH) // _MICROSECOND)
        return EncodedReadings(
            (
                list(map(codes.__getitem__, stations)),
                list(map(moments.__getitem__, times)),
                *map(_floats, values),
            )
        )


def _floats(values: Sequence[float | None]) -> list[bytes]:
    nulls = values.count(None)
    if nulls == len(values):  # flow and battery, which most gateways never send
        return [_NULL] * nulls
    if not nulls:
        return list(map(_FLOAT, repeat(8), values))
    return [_NULL if v is None else _FLOAT(8, v) for v in values]


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
