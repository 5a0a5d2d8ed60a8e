"""TimescaleDB's side of the store: enabling it, and continuous aggregates that read like plain
PostgreSQL's views whatever the age of what arrives."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest

from hydro.config import DatabaseConfig
from hydro.errors import StorageError
from hydro.local import LocalPostgres
from hydro.models import Reading
from hydro.store.db import open_pool
from hydro.store.readings import ReadingWriter
from hydro.store.schema import MigrationReport, StorageMode, migrate
from hydro.store.series import SeriesColumns, station_series
from tests.support import count_rows, fetch, run_refresh_policies

pytestmark = pytest.mark.timescaledb

ZONE = "Asia/Shanghai"
# The top of the current hour: the policies' windows are measured back from the real clock.
NOW = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)


async def _migrate(pool: Any, config: DatabaseConfig) -> MigrationReport:
    async with pool.connection() as conn:
        return await migrate(conn, config, ZONE)


async def start(url: str, mode: str) -> MigrationReport:
    """What ``hydro run`` does first: migrate, then write."""
    config = DatabaseConfig(url=url, timescaledb=mode)
    async with open_pool(config) as pool:
        report = await _migrate(pool, config)
        await ReadingWriter(pool).write([Reading("S1", NOW, water_level=1.0)])
    return report


def test_auto_falls_back_on_a_new_connection_when_timescaledb_is_not_preloaded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = LocalPostgres(tmp_path / "pg", preload_timescaledb=False)
    server.start()
    try:
        url = server.create_database("hydro")
        with caplog.at_level(logging.WARNING, logger="hydro.store.schema"):
            assert asyncio.run(start(url, "auto")).mode is StorageMode.POSTGRESQL
        assert "shared_preload_libraries = 'timescaledb'" in caplog.text
        assert count_rows(url) == 1
        with pytest.raises(StorageError, match="shared_preload_libraries = 'timescaledb'"):
            asyncio.run(start(url, "required"))
    finally:
        server.stop()


def test_a_hypertable_whose_server_lost_the_preload_refuses_to_start_with_the_hint(
    tmp_path: Path,
) -> None:
    """Plain PostgreSQL is no way out when the readings are already in a hypertable."""
    server = LocalPostgres(tmp_path / "pg")
    server.start()
    try:
        url = server.create_database("hydro")
        assert asyncio.run(start(url, "auto")).mode is StorageMode.TIMESCALEDB
        server.preload_timescaledb = False  # postgresql.conf replaced by a server upgrade
        server.restart()
        for mode in ("auto", "required"):
            with pytest.raises(StorageError, match="shared_preload_libraries = 'timescaledb'"):
                asyncio.run(start(url, mode))
        assert count_rows(url) == 1
    finally:
        server.stop()


def level_readings(start: dt.datetime, count: int, level: float) -> list[Reading]:
    """Every 20 minutes; values exact in binary so sums and averages agree to the last bit."""
    return [
        Reading("S1", start + dt.timedelta(minutes=20 * i), water_level=level + i / 4, rainfall=0.5)
        for i in range(count)
    ]


Series = dict[str, SeriesColumns]


async def series(pool: Any) -> Series:
    since, until = NOW - dt.timedelta(days=60), NOW + dt.timedelta(days=2)
    return {
        every: await station_series(pool, "S1", since, until, every, limit=100_000)
        for every in ("1h", "1d")
    }


def write_in_turn(url: str, mode: str, batches: list[list[Reading]]) -> Series:
    """Writes each batch in turn; under TimescaleDB the refresh policies run after each one,
    as they would while a gateway's backlog trickles in."""

    async def main() -> Series:
        config = DatabaseConfig(url=url, timescaledb=mode)
        async with open_pool(config) as pool:
            await _migrate(pool, config)
            writer = ReadingWriter(pool)
            for batch in batches:
                await writer.write(batch)
                if mode == "required":
                    await run_refresh_policies(pool)
            return await series(pool)

    return asyncio.run(main())


def test_late_readings_and_corrections_of_any_age_reach_the_aggregates(
    pg_url: str, local_postgres: LocalPostgres
) -> None:
    month_ago = NOW - dt.timedelta(days=30)
    batches = [
        level_readings(NOW - dt.timedelta(hours=6), 18, 770.0),
        level_readings(month_ago, 9, 771.0),  # a gateway's month-old backlog
        level_readings(NOW - dt.timedelta(days=12), 3, 772.0),
        [Reading("S1", month_ago, water_level=775.0, rainfall=2.0)],  # a corrected value
    ]
    plain_url = local_postgres.create_database("aggregates_plain")
    try:
        plain = write_in_turn(plain_url, "off", batches)
    finally:
        local_postgres.drop_database("aggregates_plain")
    assert len(plain["1d"].time) >= 3
    assert write_in_turn(pg_url, "required", batches) == plain


def test_history_reaches_the_aggregates_when_a_plain_database_switches_to_timescaledb(
    pg_url: str,
) -> None:
    history = level_readings(NOW - dt.timedelta(days=20), 20 * 72, 770.0)

    async def main() -> tuple[Series, Series]:
        plain_config = DatabaseConfig(url=pg_url, timescaledb="off")
        config = DatabaseConfig(url=pg_url, timescaledb="required")
        async with open_pool(config) as pool:
            await _migrate(pool, plain_config)
            await ReadingWriter(pool).write(history)
            plain = await series(pool)
            assert (await _migrate(pool, config)).mode is StorageMode.TIMESCALEDB
            await run_refresh_policies(pool)
            return plain, await series(pool)

    plain, timescale = asyncio.run(main())
    assert len(plain["1d"].time) == 21
    assert timescale == plain


def policies(url: str) -> list[tuple[Any, ...]]:
    return fetch(
        url,
        "SELECT hypertable_name, config->'start_offset', config->'end_offset', schedule_interval"
        " FROM timescaledb_information.jobs"
        " WHERE proc_name = 'policy_refresh_continuous_aggregate' ORDER BY 1",
    )


def test_migrate_replaces_refresh_policies_whose_window_changed(pg_url: str) -> None:
    """A database an earlier hydro set up: policies with a 3- and 10-day window, which left
    everything older unmaterialised. The replaced policies take that history in."""
    config = DatabaseConfig(url=pg_url, timescaledb="required")
    history = level_readings(NOW - dt.timedelta(days=20), 20 * 72, 770.0)

    async def start(*, earlier_release: bool) -> Series:
        async with open_pool(config) as pool:
            await _migrate(pool, config)
            if earlier_release:
                async with pool.connection() as conn:
                    for view, window in (
                        ("readings_hourly", "3 days"),
                        ("readings_daily", "10 days"),
                    ):
                        await conn.execute("SELECT remove_continuous_aggregate_policy(%s)", (view,))
                        await conn.execute(
                            "SELECT add_continuous_aggregate_policy(%s, %s::interval, NULL,"
                            " '1 hour')",
                            (view, window),
                        )
                await ReadingWriter(pool).write(history)
            await run_refresh_policies(pool)
            return await series(pool)

    asyncio.run(start(earlier_release=False))
    current = policies(pg_url)
    assert [row[1:3] for row in current] == [(None, None), (None, None)]
    short = asyncio.run(start(earlier_release=True))
    assert policies(pg_url) != current
    complete = asyncio.run(start(earlier_release=False))
    assert policies(pg_url) == current
    assert len(short["1d"].time) < len(complete["1d"].time) == 21

    async def with_retention() -> None:
        kept = DatabaseConfig(url=pg_url, timescaledb="required", retention="400d")
        async with open_pool(kept) as pool:
            await _migrate(pool, kept)

    # Chunks the retention policy drops are invalidated: a refresh over them would erase the
    # aggregates that outlive the readings.
    asyncio.run(with_retention())
    assert [row[1] for row in policies(pg_url)] == ["400 days", "400 days"]
