"""A station's readings over a time range, raw or bucketed: the charts and exports."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, NamedTuple

import psycopg_pool
from psycopg.rows import class_row

from hydro.models import Reading
from hydro.store.db import connection


async def station_readings(
    pool: psycopg_pool.AsyncConnectionPool,
    station: str,
    since: dt.datetime,
    until: dt.datetime,
) -> list[Reading]:
    """A station's stored readings in [since, until), oldest first."""
    async with connection(pool, f"reading station {station}") as conn:
        cur = conn.cursor(row_factory=class_row(Reading))
        await cur.execute(
            "SELECT station, time, water_level, flow, rainfall, battery_v FROM readings"
            " WHERE station = %s AND time >= %s AND time < %s ORDER BY time",
            (station, since, until),
        )
        return await cur.fetchall()


Every = Literal["raw", "5m", "1h", "1d"]

# (time, level, level min, level max, rainfall, flow) per point; 1h and 1d read the aggregates,
# continuous aggregates where TimescaleDB is installed. A day starts at 08:00 local time.
_SERIES: dict[str, str] = {
    "raw": "SELECT time, water_level, water_level, water_level, rainfall, flow FROM readings"
    " WHERE station = %s AND time >= %s AND time < %s ORDER BY time",
    "5m": "SELECT date_bin('5 minutes', time, TIMESTAMPTZ '2000-01-01'), avg(water_level),"
    " min(water_level), max(water_level), sum(rainfall), max(flow) FROM readings"
    " WHERE station = %s AND time >= %s AND time < %s GROUP BY 1 ORDER BY 1",
    "1h": "SELECT bucket, water_level_avg, water_level_min, water_level_max, rainfall_sum,"
    " flow_max FROM readings_hourly WHERE station = %s AND bucket >= %s AND bucket < %s"
    " ORDER BY bucket",
    "1d": "SELECT day_start, water_level_avg, water_level_min, water_level_max, rainfall_sum,"
    " flow_max FROM readings_daily WHERE station = %s AND day_start >= %s AND day_start < %s"
    " ORDER BY day_start",
}


class SeriesColumns(NamedTuple):
    """A series as columns of equal length, oldest first: what a chart takes (named as the
    API's ``Series`` names them)."""

    time: list[dt.datetime]
    water_level: list[float | None]  # the bucket's mean
    water_level_min: list[float | None]
    water_level_max: list[float | None]
    rainfall: list[float | None]  # the bucket's sum
    flow: list[float | None]  # the bucket's maximum


# One row of six arrays, in the order of the points (the aggregates read the output of the
# ordered LIMIT). A row per point cost more than the query: a month of raw readings is 8,640
# tuples, which set off Python's cyclic garbage collector about twenty times a request, now and
# then a full pass over every object the API holds (profiled: a third of the request, and its
# slowest tail). Lists of floats and datetimes do not count towards it.
_COLUMNS = (
    "SELECT array_agg(p.t), array_agg(p.v), array_agg(p.lo), array_agg(p.hi), array_agg(p.rain),"
    " array_agg(p.flow) FROM ({query} LIMIT %s) p(t, v, lo, hi, rain, flow)"
)


async def station_series(
    pool: psycopg_pool.AsyncConnectionPool,
    station: str,
    since: dt.datetime,
    until: dt.datetime,
    every: Every,
    *,
    limit: int,
) -> SeriesColumns:
    """A station's readings in [since, until), raw or bucketed, oldest first: the first
    ``limit`` of them."""
    async with connection(pool, f"reading the series of station {station}") as conn:
        # Binary: a month of raw readings loads in 0.6 of the time text takes.
        cur = conn.cursor(binary=True)
        await cur.execute(_COLUMNS.format(query=_SERIES[every]), (station, since, until, limit))
        row = await cur.fetchone()
    columns: tuple[Any, ...] = row or (None,) * 6  # no points: NULL arrays
    return SeriesColumns(*(column or [] for column in columns))
