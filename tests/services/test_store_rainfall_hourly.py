"""``rainfall_hourly``, kept by triggers on plain PostgreSQL, against the raw readings regrouped:
whatever reaches the readings (late, redelivered, revised, deleted) reaches the hourly sums, and
the daily report reads the same hours in either storage mode."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from hydro.config import Config
from hydro.models import Reading
from hydro.store.db import open_pool
from hydro.store.readings import ReadingWriter
from hydro.store.reports import day_figures
from hydro.store.schema import migrate
from tests.support import run_refresh_policies

START = dt.datetime(2026, 5, 7, tzinfo=dt.UTC)
RAW_HOURS = """
SELECT date_bin('1 hour', time, '2000-01-01 00:00+00'), station, sum(rainfall), count(rainfall)
FROM readings WHERE rainfall IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2
"""
KEPT_HOURS = "SELECT hour, station, mm::float8, reports FROM rainfall_hourly WHERE reports > 0"


def at(minutes: float) -> dt.datetime:
    return START + dt.timedelta(minutes=minutes)


def first_delivery() -> list[Reading]:
    return [
        *(Reading("P1", at(m), rainfall=0.5 * (m // 5)) for m in range(0, 180, 5)),
        *(Reading("P2", at(m), rainfall=1.25) for m in range(30, 90, 5)),
        *(Reading("R1", at(m), water_level=774.0) for m in range(0, 180, 5)),
    ]


# Each step a batch as gateways send them, through the writer's fast or slow path.
STEPS: list[list[Reading]] = [
    first_delivery(),
    [Reading("P1", at(-2 * 24 * 60 + m), rainfall=2.0) for m in range(0, 60, 5)],  # late
    first_delivery(),  # redelivered whole: identical repeats change nothing
    [
        Reading("P1", at(5), rainfall=7.5),  # revised
        Reading("P1", at(10), water_level=1.0),  # its rain report withdrawn
        Reading("P2", at(30), rainfall=3.0),  # revised twice within the batch: the last stands
        Reading("P2", at(30), rainfall=4.0),
        Reading("R1", at(60), water_level=774.0, rainfall=0.25),  # rain where there was none
        Reading("P3", at(125), rainfall=9.0),  # a new station, mixed with the revisions
    ],
]


def with_pool(
    pg_url: str, body: Callable[[AsyncConnectionPool], Awaitable[Any]], mode: str = "off"
) -> Any:
    config = Config.model_validate(
        {
            "database": {"url": pg_url, "timescaledb": mode},
            "registry": {"default_timezone": "Asia/Shanghai"},
        }
    )

    async def main() -> Any:
        async with open_pool(config.database) as pool:
            async with pool.connection() as conn:
                await migrate(conn, config.database, "Asia/Shanghai")
            return await body(pool)

    return asyncio.run(main())


def query(pg_url: str, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(statement).fetchall()  # type: ignore[arg-type]


def test_every_write_reaches_the_hourly_sums_as_the_readings_regrouped(pg_url: str) -> None:
    async def body(pool: AsyncConnectionPool) -> list[bool]:
        writer = ReadingWriter(pool)
        slow_paths = []
        for step in STEPS:
            slow_paths.append((await writer.write(step)).slow_path)
            assert sorted(query(pg_url, KEPT_HOURS)) == query(pg_url, RAW_HOURS)
        return slow_paths

    assert with_pool(pg_url, body) == [False, False, True, True]
    hours = {(hour, station): (mm, n) for hour, station, mm, n in query(pg_url, KEPT_HOURS)}
    assert hours[(START, "P2")] == (4.0 + 5 * 1.25, 6)
    assert hours[(at(60), "R1")] == (0.25, 1)
    with psycopg.connect(pg_url) as conn:
        conn.execute("DELETE FROM readings WHERE station = 'P1' AND time < %s", (at(60),))
        conn.execute("UPDATE readings SET rainfall = NULL WHERE station = 'P3'")
        conn.commit()
        assert sorted(query(pg_url, KEPT_HOURS)) == query(pg_url, RAW_HOURS)
        conn.execute("TRUNCATE readings")
        conn.commit()
    assert query(pg_url, "SELECT count(*) FROM rainfall_hourly") == [(0,)]


def test_migrate_fills_the_hourly_sums_from_readings_stored_before_them(pg_url: str) -> None:
    async def write(pool: AsyncConnectionPool) -> None:
        for step in STEPS:
            await ReadingWriter(pool).write(step)

    async def nothing(pool: AsyncConnectionPool) -> None:
        return None

    with_pool(pg_url, write)
    with psycopg.connect(pg_url) as conn:  # the database as it was before migration 0015
        conn.execute("DROP FUNCTION rainfall_hourly_apply() CASCADE")
        conn.execute("DROP TABLE rainfall_hourly")
        conn.execute("DELETE FROM schema_migrations WHERE version = 15")
        conn.commit()
    with_pool(pg_url, nothing)
    assert sorted(query(pg_url, KEPT_HOURS)) == query(pg_url, RAW_HOURS)
    with_pool(pg_url, nothing)  # migrating again leaves them as they are
    assert sorted(query(pg_url, KEPT_HOURS)) == query(pg_url, RAW_HOURS)


def report_rain(pg_url: str, mode: str) -> dict[str, list[tuple[float, bool]]]:
    """The hourly rain the daily report of May 7 reads, after every step was written."""

    async def body(pool: AsyncConnectionPool) -> dict[str, list[tuple[float, bool]]]:
        writer = ReadingWriter(pool)
        for step in STEPS:
            await writer.write(step)
            if mode == "required":
                await run_refresh_policies(pool)
        async with pool.connection() as conn, conn.transaction():
            figures = await day_figures(conn, START, START + dt.timedelta(days=1), 48)
        rain = figures.rain
        return {
            code: list(zip(rain.mm[row].tolist(), rain.reported[row].tolist(), strict=True))
            for row, code in enumerate(rain.stations)
        }

    return with_pool(pg_url, body, mode)


@pytest.mark.timescaledb
def test_the_report_reads_the_same_hourly_rain_in_either_storage_mode(
    pg_url: str, local_postgres: Any
) -> None:
    other = local_postgres.create_database("rainfall_hourly_plain")
    try:
        plain = report_rain(other, "off")
        assert query(other, "SELECT count(*) > 0 FROM rainfall_hourly") == [(True,)]
    finally:
        local_postgres.drop_database("rainfall_hourly_plain")
    assert report_rain(pg_url, "required") == plain
    assert query(pg_url, "SELECT count(*) FROM rainfall_hourly") == [(0,)]
    # The late hour two days back, the first hour of the day revised, the next one without rain.
    assert plain["P1"][:2] == [(24.0, True), (0.0, False)]
    assert plain["P1"][48] == (0.5 * sum(range(12)) - 0.5 - 1.0 + 7.5, True)
