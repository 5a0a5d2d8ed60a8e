"""Readings operators typed in, the only module with SQL on ``manual_readings``.

The value is stored in ``readings`` by the reading writer, like a gateway's; this table says who
entered it and why, written in the writer's transaction so neither is kept without the other.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg_pool
from psycopg.rows import class_row

from hydro.models import Reading
from hydro.store.db import Connection, connection, fetch_all, translate_errors


@dataclass(frozen=True, slots=True)
class ManualEntry:
    """A reading as an operator typed it, before it is judged: ``time`` as written (ISO 8601;
    without an offset, the station's local time, as ingest reads a gateway's)."""

    station: str
    time: str
    water_level: float | None
    flow: float | None
    rainfall: float | None
    entered_by: str  # the API token's name, or the CLI's --by
    note: str  # why: who phoned it in, from where


@dataclass(frozen=True, slots=True)
class ManualRecord:
    """A stored manual reading, with who entered it, why and when."""

    station: str
    time: dt.datetime
    water_level: float | None
    flow: float | None
    rainfall: float | None
    entered_by: str
    note: str
    entered_at: dt.datetime


async def record_entry(conn: Connection, reading: Reading, entered_by: str, note: str) -> None:
    with translate_errors(f"recording who entered the reading of {reading.station}"):
        await conn.execute(
            "INSERT INTO manual_readings"
            " (station, time, water_level, flow, rainfall, entered_by, note)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                reading.station,
                reading.time,
                reading.water_level,
                reading.flow,
                reading.rainfall,
                entered_by,
                note,
            ),
        )


async def manual_readings(
    pool: psycopg_pool.AsyncConnectionPool,
    station: str,
    since: dt.datetime,
    until: dt.datetime,
) -> list[ManualRecord]:
    """The station's manual readings observed in [since, until), oldest first."""
    async with connection(pool, f"reading the manual readings of {station}") as conn:
        return await fetch_all(
            conn,
            f"reading the manual readings of {station}",
            class_row(ManualRecord),
            "SELECT station, time, water_level, flow, rainfall, entered_by, note, entered_at"
            " FROM manual_readings WHERE station = %s AND time >= %s AND time < %s"
            " ORDER BY time, id",
            (station, since, until),
        )
