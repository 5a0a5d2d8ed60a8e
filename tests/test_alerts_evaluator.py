"""The evaluation tick against a real PostgreSQL: journal in, alerts, events and outbox out."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

from hydro.alerts.evaluator import AlertEvaluator
from hydro.config import AlertingConfig, DatabaseConfig
from hydro.models import Reading
from hydro.rules import load_rules
from hydro.stations import load_registry
from hydro.store.db import open_pool
from hydro.store.readings import ReadingWriter
from hydro.store.schema import migrate

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent
REGISTRY = load_registry(REPO / "stations", "Asia/Shanghai")
RULES = load_rules(REPO / "alert_rules")
MAICHONG = "67901001"  # 麦冲水库, normal level 771.50
NOW = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)


def minutes_ago(m: int) -> dt.datetime:
    return NOW - dt.timedelta(minutes=m)


def with_evaluator(
    pg_url: str, body: Callable[[AsyncConnectionPool, ReadingWriter, AlertEvaluator], Awaitable[T]]
) -> T:
    async def main() -> T:
        config = DatabaseConfig(url=pg_url, timescaledb="off")
        async with open_pool(config) as pool:
            async with pool.connection() as conn:
                await migrate(conn, config, "Asia/Shanghai")
            evaluator = AlertEvaluator(AlertingConfig(), REGISTRY, RULES, pool)
            await evaluator.load_state()
            return await body(pool, ReadingWriter(pool), evaluator)

    return asyncio.run(main())


def rows(pg_url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


def test_crossing_opens_one_alert_with_three_sms_and_the_exact_text(pg_url: str) -> None:
    async def body(
        pool: AsyncConnectionPool, writer: ReadingWriter, ev: AlertEvaluator
    ) -> tuple[int, int]:
        await writer.write([Reading(MAICHONG, minutes_ago(10), water_level=771.40)])
        await writer.write([Reading(MAICHONG, minutes_ago(5), water_level=771.54)])
        first = await ev.tick()
        await writer.write([Reading(MAICHONG, minutes_ago(0), water_level=771.60)])
        second = await ev.tick()  # still above: nothing new
        return len(first.changes), len(second.changes)

    assert with_evaluator(pg_url, body) == (1, 0)
    assert rows(pg_url, "SELECT rule_id, state, rank, severity FROM alerts") == [
        ("reservoir_normal", "open", 2, "yellow")
    ]
    outbox = rows(pg_url, "SELECT role, phone, body, status FROM outbox ORDER BY id")
    assert [r[0] for r in outbox] == ["administrative", "technical", "patrol"]
    local = minutes_ago(5).astimezone(REGISTRY.by_code[MAICHONG].tz)
    assert outbox[0][2] == (
        f"黔东南州台江县麦冲水库{local.month}月{local.day}日{local.hour}时{local.minute}分"
        "水位达到771.54米,超正常水位0.04米,请及时复核并提醒相关责任人戒备,注意防范"
    )
    assert {r[3] for r in outbox} == {"queued"}


def test_restart_mid_alert_neither_repeats_nor_forgets(pg_url: str) -> None:
    async def body(
        pool: AsyncConnectionPool, writer: ReadingWriter, ev: AlertEvaluator
    ) -> list[str]:
        await writer.write([Reading(MAICHONG, minutes_ago(20), water_level=771.6)])
        await ev.tick()
        await writer.write([Reading(MAICHONG, minutes_ago(15), water_level=771.4)])  # below: 1
        await ev.tick()
        restarted = AlertEvaluator(AlertingConfig(), REGISTRY, RULES, pool)
        await restarted.load_state()
        await writer.write([Reading(MAICHONG, minutes_ago(10), water_level=771.7)])  # still open
        await writer.write([Reading(MAICHONG, minutes_ago(5), water_level=771.4)])
        await writer.write([Reading(MAICHONG, minutes_ago(0), water_level=771.3)])
        report = await restarted.tick()
        return [c.change.value for c in report.changes]

    assert with_evaluator(pg_url, body) == ["clear"]
    assert rows(pg_url, "SELECT change FROM alert_events ORDER BY id") == [("open",), ("clear",)]
    assert rows(pg_url, "SELECT count(*) FROM outbox") == [(6,)]  # three to open, three to clear


def test_a_late_back_filled_peak_is_history_and_pages_nobody(pg_url: str) -> None:
    async def body(pool: AsyncConnectionPool, writer: ReadingWriter, ev: AlertEvaluator) -> None:
        await writer.write(
            [
                Reading(MAICHONG, minutes_ago(180 - 5 * i), water_level=level)
                for i, level in enumerate([771.0, 771.8, 771.2, 771.1])
            ]
        )
        await ev.tick()

    with_evaluator(pg_url, body)
    assert rows(pg_url, "SELECT change, late, observed_at FROM alert_events ORDER BY id") == [
        ("open", True, minutes_ago(175)),
        ("clear", True, minutes_ago(165)),
    ]
    assert rows(pg_url, "SELECT count(*) FROM outbox") == [(0,)]
