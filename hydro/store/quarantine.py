"""What was quarantined, for ``hydro quarantine`` and operators: newest first, filtered."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg_pool
from psycopg import sql
from psycopg.rows import class_row

from hydro.store.db import connection


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
