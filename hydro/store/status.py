"""The storage and delivery status: what ``hydro status``, ``/status`` and the metrics count."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, LiteralString

import psycopg_pool
from psycopg.rows import dict_row, scalar_row

from hydro.models import Channel
from hydro.store.alerts import count_open_alerts
from hydro.store.db import Connection, connection
from hydro.store.ladder import count_unconfirmed
from hydro.store.outbox import counts_by_status
from hydro.store.schema import StorageMode, storage_mode


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
    outbox: dict[Channel, dict[str, int]]  # SMS and calls by status


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
        latest = await _one(
            conn,
            "SELECT count(*) AS stations, max(time) AS reading, max(received_at) AS received"
            " FROM station_latest",
        )
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
        timescaledb_version=ts_version,
        schema_version=schema_version,
        readings=int(estimate or 0),
        stations_reporting=latest["stations"],
        latest_reading=latest["reading"],
        latest_received=latest["received"],
        quarantined_24h=quarantined,
        revisions_24h=revisions,
        open_alerts=open_alerts,
        journal_backlog=backlog,
        outbox=outbox,
    )


@dataclass(frozen=True, slots=True)
class DeliveryCounts:
    alerts_by_state: dict[str, int]
    open_alerts: int  # as `hydro status` counts them: silence alerts included
    sms_by_status: dict[str, int]
    calls_by_status: dict[str, int]
    journal_backlog: int
    stations_reporting_5m: int
    readings_5m: int  # observed in the last 5 minutes
    last_received_at: dt.datetime | None
    unconfirmed_alerts: int = 0  # 未叫应: see hydro.store.ladder.UNCONFIRMED


async def delivery_counts(pool: psycopg_pool.AsyncConnectionPool) -> DeliveryCounts:
    """Alerts by state, SMS by status, the evaluation backlog, and how many stations and
    readings reported lately (the time index makes the count read the newest rows only)."""
    async with connection(pool, "counting alerts, SMS and backlog") as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT state, count(*) AS n FROM alerts GROUP BY state")
        by_state = {row["state"]: row["n"] for row in await cur.fetchall()}
        open_alerts = await count_open_alerts(conn)
        by_status = await counts_by_status(conn)
        backlog = await _scalar(conn, "SELECT count(*) FROM ingest_journal")
        latest = await _one(
            conn,
            "SELECT count(*) FILTER (WHERE received_at > now() - interval '5 minutes')"
            " AS stations, max(received_at) AS received FROM station_latest",
        )
        recent = await _scalar(
            conn, "SELECT count(*) FROM readings WHERE time > now() - interval '5 minutes'"
        )
        unconfirmed = await count_unconfirmed(conn)
    return DeliveryCounts(
        by_state,
        open_alerts,
        by_status[Channel.SMS],
        by_status[Channel.VOICE],
        backlog,
        latest["stations"],
        recent,
        latest["received"],
        unconfirmed,
    )


async def newest_observation(pool: psycopg_pool.AsyncConnectionPool) -> dt.datetime | None:
    """The observation time of the newest reading stored from any station."""
    async with connection(pool, "reading the newest observation") as conn:
        newest: dt.datetime | None = await _scalar(conn, "SELECT max(time) FROM station_latest")
    return newest


async def _scalar(conn: Connection, query: LiteralString) -> Any:
    """The first column of the first row; None when there is no row."""
    cur = conn.cursor(row_factory=scalar_row)
    await cur.execute(query)
    return await cur.fetchone()


async def _one(conn: Connection, query: LiteralString) -> dict[str, Any]:
    """The one row of an aggregate, by column name."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query)
    row = await cur.fetchone()
    assert row is not None
    return row
