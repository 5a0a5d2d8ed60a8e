"""Each station's newest reading: the station list, the map and who has reported."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg_pool
from psycopg import sql
from psycopg.rows import class_row, dict_row

from hydro.store.db import connection


@dataclass(frozen=True, slots=True)
class LatestReading:
    station: str
    time: dt.datetime
    received_at: dt.datetime
    water_level: float | None
    flow: float | None
    rainfall: float | None
    battery_v: float | None


async def latest_readings(
    pool: psycopg_pool.AsyncConnectionPool, station: str | None = None
) -> list[LatestReading]:
    """Each station's newest reading (one station's, if given)."""
    where = sql.SQL(" WHERE station = %s") if station else sql.SQL("")
    async with connection(pool, "reading the latest readings") as conn:
        cur = conn.cursor(row_factory=class_row(LatestReading), binary=True)
        await cur.execute(
            sql.SQL(
                "SELECT station, time, received_at, water_level, flow, rainfall, battery_v"
                " FROM station_latest{}"
            ).format(where),
            [station] if station else [],
        )
        return await cur.fetchall()


async def latest_times(pool: psycopg_pool.AsyncConnectionPool) -> dict[str, dt.datetime]:
    """Each station's newest observation time: who has reported, and since when."""
    async with connection(pool, "reading the latest observation times") as conn:
        cur = conn.cursor(row_factory=dict_row, binary=True)
        await cur.execute("SELECT station, time FROM station_latest")
        return {row["station"]: row["time"] for row in await cur.fetchall()}
