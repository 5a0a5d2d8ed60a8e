"""Read-only queries for operators: the quarantine, the storage status, readings and series."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import psycopg
import psycopg_pool
from psycopg import sql
from psycopg.rows import class_row

from hydro.models import Reading
from hydro.store.alerts import count_open_alerts
from hydro.store.db import connection
from hydro.store.outbox import counts_by_status
from hydro.store.schema import StorageMode, storage_mode


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    id: int
    received_at: dt.datetime
    topic: str
    gateway: str
    station: str | None
    code: str
    reason: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class QuarantineFilter:
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    gateway: str | None = None
    station: str | None = None
    code: str | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class StorageStatus:
    mode: StorageMode
    timescaledb_version: str | None
    schema_version: int | None
    readings: int  # estimated from planner statistics for speed on large tables
    stations_reporting: int
    latest_reading: dt.datetime | None
    latest_received: dt.datetime | None
    quarantined_24h: int
    revisions_24h: int
    open_alerts: int
    journal_backlog: int  # batches committed but not yet evaluated
    outbox: dict[str, int]  # SMS by status


async def list_quarantine(
    pool: psycopg_pool.AsyncConnectionPool, query: QuarantineFilter
) -> list[QuarantineEntry]:
    """Newest first."""
    conditions: list[sql.Composable] = []
    params: list[object] = []
    for column, op, value in (
        ("received_at", ">=", query.since),
        ("received_at", "<", query.until),
        ("gateway", "=", query.gateway),
        ("station", "=", query.station),
        ("code", "=", query.code),
    ):
        if value is not None:
            conditions.append(sql.SQL("{} " + op + " %s").format(sql.Identifier(column)))
            params.append(value)
    where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
    statement = sql.SQL(
        "SELECT id, received_at, topic, gateway, station, code, reason, payload"
        " FROM quarantine{where} ORDER BY received_at DESC, id DESC LIMIT %s"
    ).format(where=where)
    async with connection(pool, "listing the quarantine") as conn:
        cur = conn.cursor(row_factory=class_row(QuarantineEntry))
        await cur.execute(statement, [*params, query.limit])
        return await cur.fetchall()


async def storage_status(pool: psycopg_pool.AsyncConnectionPool) -> StorageStatus:
    async with connection(pool, "reading the storage status") as conn:
        mode = await storage_mode(conn)
        ts_version = await _scalar(
            conn, "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
        )
        schema_version = await _scalar(conn, "SELECT max(version) FROM schema_migrations")
        estimate = await _scalar(
            conn,
            "SELECT approximate_row_count('readings')"
            if mode is StorageMode.TIMESCALEDB
            else "SELECT greatest(reltuples, 0)::bigint FROM pg_class"
            " WHERE oid = 'readings'::regclass",
        )
        cur = await conn.execute("SELECT count(*), max(time), max(received_at) FROM station_latest")
        row = await cur.fetchone()
        assert row is not None
        stations, latest_reading, latest_received = row
        quarantined = await _scalar(
            conn, "SELECT count(*) FROM quarantine WHERE received_at > now() - interval '24 hours'"
        )
        revisions = await _scalar(
            conn,
            "SELECT count(*) FROM reading_revisions"
            " WHERE replaced_at > now() - interval '24 hours'",
        )
        open_alerts = await count_open_alerts(conn)
        backlog = await _scalar(conn, "SELECT count(*) FROM ingest_journal")
        outbox = await counts_by_status(conn)
    return StorageStatus(
        mode=mode,
        timescaledb_version=None if ts_version is None else str(ts_version),
        schema_version=None if schema_version is None else int(str(schema_version)),
        readings=int(str(estimate or 0)),
        stations_reporting=int(str(stations)),
        latest_reading=latest_reading if isinstance(latest_reading, dt.datetime) else None,
        latest_received=latest_received if isinstance(latest_received, dt.datetime) else None,
        quarantined_24h=int(str(quarantined)),
        revisions_24h=int(str(revisions)),
        open_alerts=open_alerts,
        journal_backlog=int(str(backlog)),
        outbox=outbox,
    )


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
        cur = conn.cursor(binary=True)
        await cur.execute("SELECT station, time FROM station_latest")
        return {str(station): moment for station, moment in await cur.fetchall()}  # type: ignore[misc]


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

SeriesPoint = tuple[
    dt.datetime, float | None, float | None, float | None, float | None, float | None
]


async def station_series(
    pool: psycopg_pool.AsyncConnectionPool,
    station: str,
    since: dt.datetime,
    until: dt.datetime,
    every: Every,
    *,
    limit: int,
) -> list[SeriesPoint]:
    """A station's readings in [since, until), raw or bucketed, oldest first: the first
    ``limit`` of them."""
    async with connection(pool, f"reading the series of station {station}") as conn:
        cur = conn.cursor(binary=True)  # 8,640 rows: 8 ms in binary, 19 ms as text
        await cur.execute(_SERIES[every] + " LIMIT %s", (station, since, until, limit))
        rows = await cur.fetchall()
    return [tuple(row) for row in rows]  # type: ignore[misc]


@dataclass(frozen=True, slots=True)
class DeliveryCounts:
    alerts_by_state: dict[str, int]
    open_alerts: int  # as `hydro status` counts them: silence alerts included
    sms_by_status: dict[str, int]
    journal_backlog: int
    stations_reporting_5m: int
    readings_5m: int  # observed in the last 5 minutes
    last_received_at: dt.datetime | None


async def delivery_counts(pool: psycopg_pool.AsyncConnectionPool) -> DeliveryCounts:
    """Alerts by state, SMS by status, the evaluation backlog, and how many stations and
    readings reported lately (the time index makes the count read the newest rows only)."""
    async with connection(pool, "counting alerts, SMS and backlog") as conn:
        cur = await conn.execute("SELECT state, count(*) FROM alerts GROUP BY state")
        by_state = {str(state): int(str(n)) for state, n in await cur.fetchall()}
        open_alerts = await count_open_alerts(conn)
        by_status = await counts_by_status(conn)
        backlog = await _scalar(conn, "SELECT count(*) FROM ingest_journal")
        cur = await conn.execute(
            "SELECT count(*) FILTER (WHERE received_at > now() - interval '5 minutes'),"
            " max(received_at) FROM station_latest"
        )
        row = await cur.fetchone()
        recent = await _scalar(
            conn, "SELECT count(*) FROM readings WHERE time > now() - interval '5 minutes'"
        )
    assert row is not None
    return DeliveryCounts(
        by_state,
        open_alerts,
        by_status,
        int(str(backlog)),
        int(str(row[0])),
        int(str(recent)),
        row[1] if isinstance(row[1], dt.datetime) else None,
    )


async def newest_observation(pool: psycopg_pool.AsyncConnectionPool) -> dt.datetime | None:
    """The observation time of the newest reading stored from any station."""
    async with connection(pool, "reading the newest observation") as conn:
        newest = await _scalar(conn, "SELECT max(time) FROM station_latest")
    return newest if isinstance(newest, dt.datetime) else None


async def _scalar(conn: psycopg.AsyncConnection[tuple[object, ...]], query: str) -> object:
    cur = await conn.execute(query)
    row = await cur.fetchone()
    return None if row is None else row[0]
