"""The ingest journal: every change taken once, safe against crashes and concurrent writers."""

from __future__ import annotations

import asyncio
import datetime as dt

import numpy as np
import psycopg
from psycopg_pool import AsyncConnectionPool

from hydro.config import DatabaseConfig
from hydro.models import Reading
from hydro.store.db import open_pool
from hydro.store.journal import JournalTake, lock_evaluation, take_journal
from hydro.store.readings import ReadingWriter
from hydro.store.schema import migrate

T0 = dt.datetime(2026, 5, 7, 0, 0, tzinfo=dt.UTC)


async def _take(pool: AsyncConnectionPool) -> JournalTake:
    async with pool.connection() as conn, conn.transaction():
        return await take_journal(conn)


def scenario(pg_url: str, body: object) -> object:
    async def main() -> object:
        config = DatabaseConfig(url=pg_url, timescaledb="off")
        async with open_pool(config) as pool:
            async with pool.connection() as conn:
                await migrate(conn, config, "Asia/Shanghai")
            return await body(pool, ReadingWriter(pool))  # type: ignore[operator]

    return asyncio.run(main())


def test_changes_are_taken_once_and_repeats_not_at_all(pg_url: str) -> None:
    batch = [
        Reading("S1", T0 + dt.timedelta(minutes=5 * i), water_level=770.0 + i) for i in range(3)
    ]

    async def body(
        pool: AsyncConnectionPool, writer: ReadingWriter
    ) -> list[list[tuple[str, float | None, float | None]]]:
        taken = []
        await writer.write(batch)
        taken.append(await _take(pool))
        taken.append(await _take(pool))  # nothing new
        await writer.write(batch)  # a redelivery: identical, absorbed
        await writer.write(
            [
                batch[1]._replace(water_level=1.0),
                Reading("S2", T0, rainfall=2.0),
                Reading("S3", T0, flow=5.0),
            ]
        )
        taken.append(await _take(pool))
        return [
            [
                (s, None if np.isnan(w) else float(w), None if np.isnan(r) else float(r))
                for s, w, r in zip(t.stations, t.water_levels, t.rainfalls, strict=True)
            ]
            for t in taken
        ]

    first, second, third = scenario(pg_url, body)  # type: ignore[misc]
    assert first == [("S1", 770.0, None), ("S1", 771.0, None), ("S1", 772.0, None)]
    assert second == []
    # Rainfall is evaluated too; a flow alone is nothing to evaluate.
    assert third == [("S1", 1.0, None), ("S2", None, 2.0)]
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM ingest_journal").fetchone() == (0,)


def test_a_take_that_is_not_committed_is_taken_again(pg_url: str) -> None:
    async def body(pool: AsyncConnectionPool, writer: ReadingWriter) -> tuple[int, int]:
        await writer.write([Reading("S1", T0, water_level=1.0)])
        async with pool.connection() as conn, conn.transaction(force_rollback=True):
            lost = await take_journal(conn)  # and then hydro dies before committing
        return len(lost), len(await _take(pool))

    assert scenario(pg_url, body) == (1, 1)


def test_a_batch_still_committing_is_taken_once_it_commits(pg_url: str) -> None:
    """Two ingest processes: the later batch commits first; neither may be skipped, and an
    open transaction elsewhere must not hold the committed one back."""

    async def body(pool: AsyncConnectionPool, writer: ReadingWriter) -> tuple[list[str], list[str]]:
        async with await psycopg.AsyncConnection.connect(pg_url) as slow:
            await slow.execute(
                "INSERT INTO ingest_journal (stations, times, water_levels)"
                " VALUES ('{S9}', ARRAY[now()], '{1.0}')"
            )  # not committed yet
            await writer.write([Reading("S1", T0, water_level=2.0)])
            while_open = (await _take(pool)).stations
            await slow.commit()
        return while_open, (await _take(pool)).stations

    assert scenario(pg_url, body) == (["S1"], ["S9"])


def test_only_one_evaluator_at_a_time(pg_url: str) -> None:
    async def body(pool: AsyncConnectionPool, writer: ReadingWriter) -> tuple[bool, bool, bool]:
        async with pool.connection() as first, first.transaction():
            held = await lock_evaluation(first)
            async with await psycopg.AsyncConnection.connect(pg_url) as second:
                refused = await lock_evaluation(second)
        async with await psycopg.AsyncConnection.connect(pg_url) as third:
            after = await lock_evaluation(third)
        return held, refused, after

    assert scenario(pg_url, body) == (True, False, True)
