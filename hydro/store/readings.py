"""Writing readings: one transaction per batch, paying for duplicates only when there are any.

The fast path COPYs the batch straight into ``readings``. Gateways rarely repeat themselves, so it
almost always succeeds; when the primary key says a (station, time) is already there (a redelivery
after a crash, a gateway re-sending its backlog, a corrected value) the transaction is rolled back
and the batch goes through the slow path: COPY into a temporary table, log the values a different
delivery replaces, then upsert. Either way the batch's quarantined items, the per-station latest
reading and the readings commit together, so a batch is either wholly stored or not at all.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import psycopg
import psycopg_pool

from hydro.models import Reading, Rejection
from hydro.store.db import Connection, translate_errors
from hydro.store.journal import announce_journal
from hydro.store.manual import ManualEntry, record_entry
from hydro.store.pgbinary import BatchEncoder, EncodedReadings

log = logging.getLogger(__name__)

_READING_COLUMNS = "station, time, water_level, flow, rainfall, battery_v"

_STAGE = """
CREATE TEMPORARY TABLE IF NOT EXISTS readings_stage (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    station text, time timestamptz,
    water_level float8, flow float8, rainfall float8, battery_v float8
) ON COMMIT DELETE ROWS
"""

# Values that are replaced, whether already stored or superseded later in the same batch, go to
# the revision log; identical repeats are absorbed without a trace.
_LOG_REVISIONS = """
WITH ranked AS (
    SELECT s.*, row_number() OVER (PARTITION BY station, time ORDER BY seq DESC) AS newest_first
    FROM readings_stage s
), winners AS (
    SELECT * FROM ranked WHERE newest_first = 1
)
INSERT INTO reading_revisions (station, time, water_level, flow, rainfall, battery_v)
SELECT r.station, r.time, r.water_level, r.flow, r.rainfall, r.battery_v
FROM readings r JOIN winners w USING (station, time)
WHERE (r.water_level, r.flow, r.rainfall, r.battery_v)
      IS DISTINCT FROM (w.water_level, w.flow, w.rainfall, w.battery_v)
UNION ALL
SELECT l.station, l.time, l.water_level, l.flow, l.rainfall, l.battery_v
FROM ranked l JOIN winners w USING (station, time)
WHERE l.newest_first > 1
  AND (l.water_level, l.flow, l.rainfall, l.battery_v)
      IS DISTINCT FROM (w.water_level, w.flow, w.rainfall, w.battery_v)
"""

_UPSERT = f"""
INSERT INTO readings ({_READING_COLUMNS})
SELECT DISTINCT ON (station, time) {_READING_COLUMNS}
FROM readings_stage ORDER BY station, time, seq DESC
ON CONFLICT (station, time) DO UPDATE SET
    water_level = excluded.water_level, flow = excluded.flow,
    rainfall = excluded.rainfall, battery_v = excluded.battery_v
WHERE (readings.water_level, readings.flow, readings.rainfall, readings.battery_v)
      IS DISTINCT FROM (excluded.water_level, excluded.flow, excluded.rainfall, excluded.battery_v)
RETURNING (xmax = 0) AS inserted, station, time, water_level, flow, rainfall, battery_v
"""

# Arrays go as binary parameters (%b), encoded by hydro.store.pgbinary.
_UPDATE_LATEST = """
INSERT INTO station_latest (station, time, water_level, flow, rainfall, battery_v, received_at)
SELECT u.*, now() FROM unnest(
    %b::text[], %b::timestamptz[], %b::float8[], %b::float8[], %b::float8[], %b::float8[]
) AS u(station, time, water_level, flow, rainfall, battery_v)
ON CONFLICT (station) DO UPDATE SET
    time = excluded.time, water_level = excluded.water_level, flow = excluded.flow,
    rainfall = excluded.rainfall, battery_v = excluded.battery_v, received_at = excluded.received_at
WHERE excluded.time >= station_latest.time
"""

# Arrays go as binary parameters (%b), like the latest readings above.
_JOURNAL = """
INSERT INTO ingest_journal (stations, times, water_levels, rainfalls)
VALUES (%b::text[], %b::timestamptz[], %b::float8[], %b::float8[])
"""

# Encoded station codes a writer keeps: more than any registry holds (accepted readings are of
# registry stations), a bound all the same.
_CODES_KEPT = 100_000

_QUARANTINE_TYPES = ["timestamptz", "text", "text", "text", "text", "text", "bytea"]


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What one committed batch did; ``duplicates`` were already stored with the same values."""

    inserted: int
    revised: int
    duplicates: int
    quarantined: int
    slow_path: bool


class ReadingWriter:
    """Stores batches of accepted readings and rejections; the only writer of ``readings``."""

    def __init__(self, pool: psycopg_pool.AsyncConnectionPool, *, journal: bool = True) -> None:
        self._pool = pool
        self._journal = journal
        self._codes: dict[str, bytes] = {}  # station codes encoded, for every batch

    async def write(
        self,
        readings: Sequence[Reading],
        rejections: Sequence[Rejection] = (),
        *,
        entered: ManualEntry | None = None,
    ) -> BatchOutcome:
        """Commits the whole batch or nothing; raises StorageUnavailable when it may be retried.

        Retrying a batch whose commit outcome is unknown (the connection died during COMMIT) is
        safe: the slow path absorbs whatever the lost commit did store. ``entered``: the batch is
        one reading an operator typed in, recorded with who and why in the same transaction.
        """
        if len(self._codes) > _CODES_KEPT:
            self._codes.clear()
        # One encoder for the batch (the slow path encodes what changed with the same times),
        # before a connection is taken: encoding is the batch's busiest Python work.
        encoder = BatchEncoder(self._codes)
        batch = _encode(encoder, readings)
        with translate_errors(f"storing a batch of {len(readings)} readings"):
            async with self._pool.connection() as conn:
                try:
                    async with conn.transaction():
                        await _copy_readings(conn, "readings", batch.fields)
                        await self._finish(conn, batch, rejections)
                        await _record(conn, readings, entered)
                    return BatchOutcome(len(readings), 0, 0, len(rejections), slow_path=False)
                except psycopg.errors.UniqueViolation:
                    pass
                async with conn.transaction():
                    inserted, updated, changed = await self._upsert(conn, batch, encoder)
                    await self._finish(conn, changed, rejections)
                    await _record(conn, readings, entered)
                duplicates = len(readings) - inserted - updated
                return BatchOutcome(inserted, updated, duplicates, len(rejections), slow_path=True)

    async def _upsert(
        self, conn: Connection, batch: _Batch, encoder: BatchEncoder
    ) -> tuple[int, int, _Batch]:
        """(inserted, updated, the readings that changed the table) for a batch with repeats."""
        await conn.execute(_STAGE)
        await _copy_readings(conn, "readings_stage", batch.fields)
        revisions = await conn.execute(_LOG_REVISIONS)
        revised_rows = max(revisions.rowcount, 0)
        cur = await conn.execute(_UPSERT)
        rows = await cur.fetchall()
        inserted = sum(1 for row in rows if row[0])
        if revised_rows:
            log.info("revised %d stored values (later deliveries differ)", revised_rows)
        _, *columns = zip(*rows, strict=True) if rows else ((),) * 7
        return inserted, len(rows) - inserted, _encode_columns(encoder, columns)

    async def _finish(
        self, conn: Connection, batch: _Batch, rejections: Sequence[Rejection]
    ) -> None:
        """What commits with the readings that changed the table: the per-station latest
        reading, the journal entry for evaluation, and the quarantined items."""
        if self._journal:
            # What the rules read: water levels and rainfall (flow and battery go unjournaled).
            ruled = batch.fields.having(_JOURNALED)
            if len(ruled):
                await conn.execute(_JOURNAL, ruled.arrays(_JOURNALED))
                await announce_journal(conn)
        latest = _latest(batch)
        if len(latest):
            await conn.execute(_UPDATE_LATEST, latest.arrays(_ALL_VALUES))
        if rejections:
            await write_rejections(conn, rejections)


async def _record(
    conn: Connection, readings: Sequence[Reading], entered: ManualEntry | None
) -> None:
    """Who typed in the batch's one reading, and why (nothing for a gateway's batch)."""
    if entered is not None:
        for reading in readings:
            await record_entry(conn, reading, entered.entered_by, entered.note)


async def _copy_readings(conn: Connection, table: str, fields: EncodedReadings) -> None:
    async with conn.cursor().copy(
        f"COPY {table} ({_READING_COLUMNS}) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        await copy.write(fields.copy_data())


_JOURNALED = (2, 4)  # water_level, rainfall
_ALL_VALUES = (2, 3, 4, 5)


@dataclass(frozen=True, slots=True)
class _Batch:
    """Readings as columns (the stations and times, to choose the latest reading by) and every
    field encoded once, for the COPY and the array parameters alike."""

    stations: Sequence[str]
    times: Sequence[dt.datetime]
    fields: EncodedReadings


def _encode(encoder: BatchEncoder, readings: Sequence[Reading]) -> _Batch:
    # A pass per field: zip(*readings) made an iterator per reading, each one the garbage
    # collector's to count.
    return _encode_columns(encoder, [list(map(field, readings)) for field in _FIELDS])


_FIELDS = tuple(map(itemgetter, range(len(Reading._fields))))


def _encode_columns(encoder: BatchEncoder, columns: Sequence[Sequence[Any]]) -> _Batch:
    stations, times, *values = columns
    return _Batch(stations, times, encoder.encode(stations, times, values))


def _latest(batch: _Batch) -> EncodedReadings:
    """Each station's newest reading in the batch (of equal times, the later one)."""
    stations, times = batch.stations, batch.times
    if len(set(stations)) == len(stations):  # the usual batch: each station reports once
        return batch.fields
    order = sorted(range(len(times)), key=times.__getitem__)  # stable: equal times keep order
    newest = dict(zip(map(stations.__getitem__, order), order, strict=True))
    return batch.fields.at(list(newest.values()))


async def write_rejections(conn: Connection, rejections: Sequence[Rejection]) -> None:
    async with conn.cursor().copy(
        "COPY quarantine (received_at, topic, gateway, station, code, reason, payload)"
        " FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(_QUARANTINE_TYPES)
        for q in rejections:
            await copy.write_row(
                (
                    q.received_at,
                    storable_text(q.topic),
                    storable_text(q.gateway),
                    None if q.station is None else storable_text(q.station),
                    q.code.value,
                    storable_text(q.reason),
                    q.payload,
                )
            )


def storable_text(value: str) -> str:
    """What PostgreSQL text can hold. A NUL or a lone surrogate (JSON's "\\ud800") from a gateway
    would fail the whole batch on every redelivery, a poison message; they are kept visibly
    escaped instead (the payload keeps them as sent).
    """
    value = value.replace("\x00", "\\x00")
    return value if value.isascii() else value.encode("utf-8", "backslashreplace").decode()
