"""The store against a real PostgreSQL: migrations, the two write paths, revisions, quarantine."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from hydro.config import DatabaseConfig
from hydro.errors import StorageError
from hydro.models import Channel, Reading, Rejection, RejectionCode
from hydro.store.db import open_pool
from hydro.store.quarantine import QuarantineFilter, list_quarantine
from hydro.store.readings import BatchOutcome, ReadingWriter
from hydro.store.schema import StorageMode, bundled_migrations, migrate
from hydro.store.series import SeriesColumns, station_readings, station_series
from hydro.store.status import storage_status
from tests.support import refresh

T = TypeVar("T")
T0 = dt.datetime(2026, 5, 7, 0, 0, tzinfo=dt.UTC)  # 08:00 in Asia/Shanghai


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def with_store(
    pg_url: str,
    body: Callable[[AsyncConnectionPool, ReadingWriter], Awaitable[T]],
    *,
    mode: str = "off",
) -> T:
    """Runs ``body(pool, writer)`` against a freshly migrated database."""

    async def main() -> T:
        config = DatabaseConfig(url=pg_url, timescaledb=mode)
        async with open_pool(config) as pool:
            async with pool.connection() as conn:
                await migrate(conn, config, "Asia/Shanghai")
            return await body(pool, ReadingWriter(pool))

    return asyncio.run(main())


def rows(pg_url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(query).fetchall()


def test_migrate_twice_changes_nothing(pg_url: str) -> None:
    async def twice() -> tuple[tuple[str, ...], tuple[str, ...]]:
        config = DatabaseConfig(url=pg_url, timescaledb="off")
        async with open_pool(config) as pool, pool.connection() as conn:
            first = await migrate(conn, config, "Asia/Shanghai")
            second = await migrate(conn, config, "Asia/Shanghai")
        assert first.mode is StorageMode.POSTGRESQL
        return first.applied, second.applied

    first, second = asyncio.run(twice())
    assert first == tuple(f"{m.version:04d}_{m.name}" for m in bundled_migrations())
    assert second == ()
    assert rows(pg_url, "SELECT count(*) FROM schema_migrations") == [(len(first),)]


def test_a_migration_number_recorded_under_another_name_stops_migrate(pg_url: str) -> None:
    """A database migrated by a build whose migration 0010 was another one (a renumbered
    branch) would skip the bundled 0010 for good: migrate refuses, naming both."""
    config = DatabaseConfig(url=pg_url, timescaledb="off")

    async def migrate_once() -> None:
        async with open_pool(config) as pool, pool.connection() as conn:
            await migrate(conn, config, "Asia/Shanghai")

    asyncio.run(migrate_once())
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "UPDATE schema_migrations SET name = 'station_latest_fillfactor' WHERE version = 10"
        )
    with pytest.raises(StorageError, match="0010 was applied as 'station_latest_fillfactor'"):
        asyncio.run(migrate_once())


def test_a_batch_with_a_station_twice_keeps_its_newest_as_latest(pg_url: str) -> None:
    """The newest by observation time, not the last in the batch (an hourly batch may list a
    station's reports in any order)."""

    async def body(pool: AsyncConnectionPool, writer: ReadingWriter) -> object:
        await writer.write(
            [Reading("S1", at(60), water_level=772.0), Reading("S1", at(0), water_level=770.0)]
        )
        return None

    with_store(pg_url, body)
    assert rows(pg_url, "SELECT station, time, water_level FROM station_latest") == [
        ("S1", at(60), 772.0)
    ]


def test_fast_path_stores_a_clean_batch(pg_url: str) -> None:
    batch = [Reading("S1", at(5 * i), water_level=770.0 + i / 100) for i in range(12)]

    async def body(pool: AsyncConnectionPool, writer: ReadingWriter) -> BatchOutcome:
        return await writer.write(batch)

    outcome = with_store(pg_url, body)
    assert (outcome.inserted, outcome.duplicates, outcome.slow_path) == (12, 0, False)
    assert rows(pg_url, "SELECT count(*), max(water_level) FROM readings") == [(12, 770.11)]


def test_every_value_comes_back_as_written_by_both_paths(pg_url: str) -> None:
    """The writer encodes PostgreSQL's binary format itself: codes beyond ASCII, times to the
    microsecond and before 2000, NULLs, negative zero and the extremes of a double round-trip,
    into readings, the latest reading and the journal alike."""
    old = dt.datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC)
    batch = [
        Reading("水文站-1", at(0) + dt.timedelta(microseconds=1), 1.5, None, None, 12.25),
        Reading("S2", old, None, -0.0, 5e-324, None),
        Reading("S2", at(1), -1.7976931348623157e308, None, 0.1, None),
    ]
    stored = "SELECT station, time, water_level, flow, rainfall, battery_v FROM {} ORDER BY 1, 2"

    async def body(pool: AsyncConnectionPool, writer: ReadingWriter) -> object:
        await writer.write(batch)
        return await writer.write([*batch, Reading("S3", at(2), 2.0)])  # the slow path

    outcome = with_store(pg_url, body)
    assert (outcome.inserted, outcome.duplicates, outcome.slow_path) == (1, 3, True)
    assert rows(pg_url, stored.format("readings")) == sorted([*batch, Reading("S3", at(2), 2.0)])
    assert rows(pg_url, stored.format("station_latest")) == [
        batch[2],
        Reading("S3", at(2), 2.0),
        batch[0],
    ]
    assert rows(
        pg_url,
        "SELECT u.* FROM ingest_journal, unnest(stations, times, water_levels, rainfalls) AS u"
        " ORDER BY id",
    ) == [
        ("水文站-1", batch[0].time, 1.5, None),
        ("S2", old, None, 5e-324),
        ("S2", at(1), -1.7976931348623157e308, 0.1),
        ("S3", at(2), 2.0, None),
    ]


def test_redelivered_batch_leaves_one_row_each_and_no_revision(pg_url: str) -> None:
    batch = [Reading("S1", at(5 * i), water_level=770.0) for i in range(5)]

    async def body(pool: AsyncConnectionPool, writer: ReadingWriter) -> object:
        await writer.write(batch)
        return await writer.write(batch)

    outcome = with_store(pg_url, body)
    assert (outcome.inserted, outcome.revised, outcome.duplicates) == (0, 0, 5)
    assert outcome.slow_path
    assert rows(pg_url, "SELECT count(*) FROM readings") == [(5,)]
    assert rows(pg_url, "SELECT count(*) FROM reading_revisions") == [(0,)]


def test_later_different_value_wins_and_the_old_one_is_kept(pg_url: str) -> None:
    async def body(pool: AsyncConnectionPool, writer: ReadingWriter) -> object:
        await writer.write([Reading("S1", at(0), water_level=770.0, rainfall=1.0)])
        return await writer.write(
            [Reading("S1", at(0), water_level=771.5), Reading("S1", at(5), water_level=771.6)]
        )

    outcome = with_store(pg_url, body)
    assert (outcome.inserted, outcome.revised) == (1, 1)
    assert rows(
        pg_url, "SELECT water_level, rainfall FROM readings WHERE time = '2026-05-07 00:00Z'"
    ) == [(771.5, None)]
    assert rows(pg_url, "SELECT station, water_level, rainfall FROM reading_revisions") == [
        ("S1", 770.0, 1.0)
    ]


def test_duplicate_inside_one_batch_keeps_the_last_and_logs_the_first(pg_url: str) -> None:
    batch = [
        Reading("S1", at(0), water_level=1.0),
        Reading("S2", at(0), water_level=5.0),
        Reading("S1", at(0), water_level=2.0),
    ]

    async def body(pool: AsyncConnectionPool, writer: ReadingWriter) -> BatchOutcome:
        return await writer.write(batch)

    outcome = with_store(pg_url, body)
    assert outcome.inserted == 2
    assert rows(pg_url, "SELECT station, water_level FROM readings ORDER BY station") == [
        ("S1", 2.0),
        ("S2", 5.0),
    ]
    assert rows(pg_url, "SELECT station, water_level FROM reading_revisions") == [("S1", 1.0)]


def test_latest_reading_ignores_back_filled_older_readings(pg_url: str) -> None:
    async def body(pool: AsyncConnectionPool, writer: ReadingWriter) -> object:
        await writer.write([Reading("S1", at(60), water_level=772.0)])
        await writer.write(
            [Reading("S1", at(0), water_level=770.0), Reading("S2", at(5), flow=3.0)]
        )
        return None

    with_store(pg_url, body)
    assert rows(
        pg_url, "SELECT station, time, water_level, flow FROM station_latest ORDER BY 1"
    ) == [
        ("S1", at(60), 772.0, None),
        ("S2", at(5), None, 3.0),
    ]


def rejection(code: RejectionCode, station: str | None, received: dt.datetime) -> Rejection:
    return Rejection(
        topic="hydro/gw-1/readings",
        gateway="gw-1",
        payload=b'{"station": "X"}',
        code=code,
        reason=f"{code} for test",
        received_at=received,
        station=station,
    )


def test_rejections_commit_with_the_batch_and_can_be_listed(pg_url: str) -> None:
    now = dt.datetime.now(dt.UTC)
    older = now - dt.timedelta(hours=3)

    async def body(pool: AsyncConnectionPool, writer: ReadingWriter) -> object:
        outcome = await writer.write(
            [Reading("S1", at(0), water_level=1.0)],
            [
                rejection(RejectionCode.UNKNOWN_STATION, "X", older),
                rejection(RejectionCode.MALFORMED_JSON, None, now),
            ],
        )
        assert outcome.quarantined == 2
        everything = await list_quarantine(pool, QuarantineFilter())
        recent = await list_quarantine(
            pool,
            QuarantineFilter(since=now - dt.timedelta(hours=1)),
        )
        by_code = await list_quarantine(
            pool,
            QuarantineFilter(code="unknown_station"),
        )
        return everything, recent, by_code

    everything, recent, by_code = with_store(pg_url, body)
    assert [e.code for e in everything] == ["malformed_json", "unknown_station"]  # newest first
    assert everything[0].payload == b'{"station": "X"}'
    assert [e.code for e in recent] == ["malformed_json"]
    assert [(e.station, e.gateway) for e in by_code] == [("X", "gw-1")]


def test_a_nul_from_a_gateway_cannot_poison_the_batch(pg_url: str) -> None:
    """PostgreSQL text cannot hold NUL; a refused code carrying one is stored escaped."""
    poisoned = Rejection(
        topic="hydro/gw-1/readings",
        gateway="gw-1",
        payload=b'{"station": "A\\u0000B"}',
        code=RejectionCode.UNKNOWN_STATION,
        reason="station 'A\x00B' is not in the registry; unknown fields: \x00",
        received_at=dt.datetime.now(dt.UTC),
        station="A\x00B",
    )

    async def body(pool: AsyncConnectionPool, writer: ReadingWriter) -> BatchOutcome:
        return await writer.write([Reading("S1", at(0), water_level=1.0)], [poisoned])

    assert with_store(pg_url, body).quarantined == 1
    assert rows(pg_url, "SELECT station, reason FROM quarantine") == [
        ("A\\x00B", "station 'A\\x00B' is not in the registry; unknown fields: \\x00")
    ]


def test_status_and_station_readings(pg_url: str) -> None:
    async def body(pool: AsyncConnectionPool, writer: ReadingWriter) -> object:
        await writer.write([Reading("S1", at(5 * i), water_level=float(i)) for i in range(6)])
        status = await storage_status(pool)
        window = await station_readings(pool, "S1", at(5), at(20))
        return status, window

    status, window = with_store(pg_url, body)
    assert status.mode is StorageMode.POSTGRESQL
    assert (status.open_alerts, status.journal_backlog, status.outbox) == (
        0,
        1,
        {Channel.SMS: {}, Channel.VOICE: {}},
    )
    assert status.stations_reporting == 1
    assert status.latest_reading == at(25)
    assert [r.water_level for r in window] == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("mode", ["off", pytest.param("required", marks=pytest.mark.timescaledb)])
def test_hydrological_day_runs_from_0800_to_0800_local(pg_url: str, mode: str) -> None:
    # 07:55 and 08:00 Asia/Shanghai fall in different hydrological days.
    batch = [
        Reading("S1", at(-5), water_level=1.0, rainfall=2.0),  # 07:55 local: the day of May 6
        Reading("S1", at(0), water_level=3.0, rainfall=4.0),  # 08:00 local: the day of May 7
        Reading("S1", at(23 * 60 + 55), water_level=5.0, rainfall=6.0),  # 07:55 on May 8
    ]

    async def body(pool: AsyncConnectionPool, writer: ReadingWriter) -> object:
        await writer.write(batch)
        if mode == "required":
            await refresh(pool, "readings_daily")
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT (day_start AT TIME ZONE 'Asia/Shanghai')::text, readings, rainfall_sum,"
                " water_level_max FROM readings_daily ORDER BY day_start"
            )
            return await cur.fetchall()

    assert with_store(pg_url, body, mode=mode) == [
        ("2026-05-06 08:00:00", 1, 2.0, 1.0),
        ("2026-05-07 08:00:00", 2, 10.0, 5.0),
    ]


@pytest.mark.timescaledb
def test_timescaledb_layout(pg_url: str) -> None:
    async def body(pool: AsyncConnectionPool, writer: ReadingWriter) -> object:
        await writer.write([Reading("S1", at(0), water_level=1.0)])
        await writer.write([Reading("S1", at(0), water_level=2.0)])  # slow path on a hypertable
        return await storage_status(pool)

    status = with_store(pg_url, body, mode="required")
    assert status.mode is StorageMode.TIMESCALEDB
    assert rows(pg_url, "SELECT compression_enabled FROM timescaledb_information.hypertables") == [
        (True,)
    ]
    views = rows(
        pg_url, "SELECT view_name FROM timescaledb_information.continuous_aggregates ORDER BY 1"
    )
    assert views == [("readings_daily",), ("readings_hourly",)]
    assert rows(pg_url, "SELECT water_level FROM readings") == [(2.0,)]

    async def restarted(pool: AsyncConnectionPool, writer: ReadingWriter) -> object:
        return await storage_status(pool)

    # hydro migrates at every start: the continuous aggregates must survive it.
    assert with_store(pg_url, restarted, mode="required").mode is StorageMode.TIMESCALEDB
    assert (
        rows(
            pg_url, "SELECT view_name FROM timescaledb_information.continuous_aggregates ORDER BY 1"
        )
        == views
    )
    assert rows(pg_url, "SELECT water_level FROM reading_revisions") == [(1.0,)]


@pytest.mark.timescaledb
def test_late_readings_land_in_compressed_chunks(pg_url: str) -> None:
    """A gateway's months-old backlog meets chunks the compression policy already packed."""
    old = dt.datetime(2025, 1, 10, tzinfo=dt.UTC)

    async def body(pool: AsyncConnectionPool, writer: ReadingWriter) -> list[BatchOutcome]:
        await writer.write([Reading("S1", old, water_level=1.0)])
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT job_id FROM timescaledb_information.jobs"
                " WHERE proc_name = 'policy_compression'"
            )
            [(job,)] = await cur.fetchall()
            await conn.execute("CALL run_job(%s)", (job,))
        return [
            await writer.write([Reading("S1", old + dt.timedelta(minutes=5), water_level=2.0)]),
            await writer.write([Reading("S1", old, water_level=3.0)]),  # a corrected value
        ]

    fresh, corrected = with_store(pg_url, body, mode="required")
    assert rows(pg_url, "SELECT count(*) FROM timescaledb_information.chunks WHERE is_compressed")
    assert (fresh.inserted, corrected.revised) == (1, 1)
    assert rows(pg_url, "SELECT water_level FROM readings ORDER BY time") == [(3.0,), (2.0,)]
    assert rows(pg_url, "SELECT water_level FROM reading_revisions") == [(1.0,)]


@pytest.mark.timescaledb
def test_a_batch_correcting_many_stations_in_compressed_chunks_is_stored(pg_url: str) -> None:
    """Each station's compressed segment that a batch touches is decompressed, 1,000 readings
    here: TimescaleDB's default limit of 100,000 a transaction refused this batch, and the writer
    took the refusal for an outage and would have retried it forever."""
    chunk_start = dt.datetime(2025, 1, 9, tzinfo=dt.UTC)  # 7-day chunks start on a Thursday
    stations = [f"S{n:03d}" for n in range(101)]

    async def body(pool: AsyncConnectionPool, writer: ReadingWriter) -> BatchOutcome:
        async with pool.connection() as conn:
            await conn.execute(
                "INSERT INTO readings (station, time, water_level)"
                " SELECT s, %s + i * interval '5 minutes', 1.0"
                " FROM unnest(%s::text[]) s, generate_series(0, 999) i",
                (chunk_start, stations),
            )
            await conn.execute("SELECT compress_chunk(c) FROM show_chunks('readings') c")
        return await writer.write([Reading(s, chunk_start, water_level=2.0) for s in stations])

    outcome = with_store(pg_url, body, mode="required")
    assert outcome.revised == len(stations)
    assert rows(pg_url, "SELECT count(*) FROM readings WHERE water_level = 2.0") == [(101,)]


@pytest.mark.parametrize("mode", ["off", pytest.param("required", marks=pytest.mark.timescaledb)])
def test_the_key_of_a_database_migrated_before_0016_comes_to_cover_the_series(
    pg_url: str, mode: str
) -> None:
    """Migration 0016 on a database an earlier hydro filled (under TimescaleDB with a chunk
    already compressed): the readings stay, the key carries the values a series reads, and a
    late correction still replaces its reading."""
    covering = '(station, "time") INCLUDE (water_level, flow, rainfall)'
    old, new = dt.datetime(2025, 1, 10, tzinfo=dt.UTC), dt.datetime.now(dt.UTC)

    async def earlier_release(pool: AsyncConnectionPool, writer: ReadingWriter) -> None:
        await writer.write([Reading("S1", old, water_level=1.0), Reading("S1", new, flow=4.0)])
        async with pool.connection() as conn:
            await conn.execute(
                "ALTER TABLE readings DROP CONSTRAINT readings_pkey,"
                " ADD PRIMARY KEY (station, time)"
            )
            await conn.execute("DELETE FROM schema_migrations WHERE version = 16")
            if mode == "required":
                await conn.execute(
                    "SELECT compress_chunk(show_chunks('readings', older_than => %s))",
                    (new - dt.timedelta(days=30),),
                )

    async def upgraded(pool: AsyncConnectionPool, writer: ReadingWriter) -> SeriesColumns:
        await writer.write([Reading("S1", old, water_level=3.0)])  # a corrected value
        return await station_series(pool, "S1", old, new + dt.timedelta(minutes=1), "raw", limit=9)

    with_store(pg_url, earlier_release, mode=mode)
    assert covering not in str(rows(pg_url, "SELECT pg_get_indexdef('readings_pkey'::regclass)"))
    series = with_store(pg_url, upgraded, mode=mode)
    assert (series.water_level, series.flow) == ([3.0, None], [None, 4.0])
    assert rows(pg_url, "SELECT water_level FROM reading_revisions") == [(1.0,)]
    keys = rows(
        pg_url,
        "SELECT pg_get_indexdef(indexrelid) FROM pg_index"
        " WHERE indisprimary AND indrelid IN (SELECT 'readings'::regclass"
        " UNION ALL SELECT inhrelid FROM pg_inherits WHERE inhparent = 'readings'::regclass)",
    )
    assert len(keys) == (1 if mode == "off" else 3)  # under TimescaleDB, each chunk's too
    assert all(covering in str(key) for (key,) in keys)
    if mode == "required":
        assert rows(
            pg_url, "SELECT count(*) FROM timescaledb_information.chunks WHERE is_compressed"
        ) == [(1,)]
