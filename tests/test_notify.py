"""Sending the outbox through the real twilio client to a local Twilio-compatible server."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

from hydro.config import DatabaseConfig, SmsConfig
from hydro.notify.dispatcher import Dispatcher
from hydro.notify.providers import ConsoleProvider, OutgoingSms, TwilioProvider
from hydro.store.db import open_pool
from hydro.store.schema import migrate
from tests.twilio_server import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

T = TypeVar("T")
PHONES = ["+8613800000001", "+8613900000002", "+8615800000003"]


def sms_config(**overrides: Any) -> SmsConfig:
    return SmsConfig.model_validate({"retry_first": "10ms", "rate_per_second": 1000, **overrides})


def with_outbox(
    pg_url: str, phones: list[str], body: Callable[[AsyncConnectionPool], Awaitable[T]]
) -> T:
    async def main() -> T:
        config = DatabaseConfig(url=pg_url, timescaledb="off")
        async with open_pool(config) as pool:
            async with pool.connection() as conn:
                await migrate(conn, config, "Asia/Shanghai")
                for i, phone in enumerate(phones):
                    await conn.execute(
                        "INSERT INTO outbox (station, role, person, phone, body)"
                        " VALUES ('67901001', %s, %s, %s, %s)",
                        (
                            ["administrative", "technical", "patrol"][i % 3],
                            f"p{i}",
                            phone,
                            f"msg {i}",
                        ),
                    )
            return await body(pool)

    return asyncio.run(main())


def twilio(fake: FakeTwilio) -> TwilioProvider:
    return TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, "+15005550006", base_url=fake.base_url)


def outbox(pg_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(
            "SELECT role, phone, status, attempts, provider_id, last_error FROM outbox ORDER BY id"
        ).fetchall()


def test_queued_sms_go_out_once_each_with_their_provider_ids(pg_url: str) -> None:
    with FakeTwilio() as fake:

        async def body(pool: AsyncConnectionPool) -> tuple[int, int]:
            dispatcher = Dispatcher(sms_config(), twilio(fake), pool)
            return await dispatcher.run_once(), await dispatcher.run_once()

        assert with_outbox(pg_url, PHONES, body) == (3, 0)
        assert sorted((m.to, m.body) for m in fake.received) == [
            ("+8613800000001", "msg 0"),
            ("+8613900000002", "msg 1"),
            ("+8615800000003", "msg 2"),
        ]
    rows = outbox(pg_url)
    assert {r[2] for r in rows} == {"sent"}
    assert all(r[4].startswith("SM") and r[3] == 1 for r in rows)


def test_a_500_is_retried_and_one_sms_is_delivered(pg_url: str) -> None:
    with FakeTwilio() as fake:
        fake.answers.extend([(500, 20500), (503, 20503)])

        async def body(pool: AsyncConnectionPool) -> None:
            dispatcher = Dispatcher(sms_config(), twilio(fake), pool)
            for _ in range(50):
                await dispatcher.run_once()
                if outbox(pg_url)[0][2] == "sent":
                    return
                await asyncio.sleep(0.02)

        with_outbox(pg_url, PHONES[:1], body)
        assert len(fake.received) == 3
    [(_, _, status, attempts, provider_id, last_error)] = outbox(pg_url)
    assert (status, attempts, last_error) == ("sent", 3, None)
    assert provider_id.startswith("SM")


def test_an_invalid_number_fails_at_once_and_the_duty_officer_is_told(pg_url: str) -> None:
    with FakeTwilio() as fake:
        fake.answers.append((400, 21211))
        config = sms_config(duty_officers=[{"name": "值班员", "phone": "+8613700000009"}])

        async def body(pool: AsyncConnectionPool) -> None:
            dispatcher = Dispatcher(config, twilio(fake), pool)
            await dispatcher.run_once()  # fails the alert SMS, queues the notice
            await dispatcher.run_once()  # sends the notice

        with_outbox(pg_url, PHONES[:1], body)
        assert [m.to for m in fake.received] == ["+8613800000001", "+8613700000009"]
        assert "未能收到预警短信" in fake.received[1].body
        assert "****0001" in fake.received[1].body
    failed, notice = outbox(pg_url)
    assert failed[2:4] == ("failed", 1)
    assert "21211" in failed[5]
    assert notice[:3] == ("duty", "+8613700000009", "sent")


def test_rows_left_sending_by_a_crash_are_sent_again(pg_url: str) -> None:
    with FakeTwilio() as fake:

        async def body(pool: AsyncConnectionPool) -> tuple[int, int]:
            async with pool.connection() as conn:
                await conn.execute("UPDATE outbox SET status = 'sending', attempts = 1")
            dispatcher = Dispatcher(sms_config(), twilio(fake), pool)
            before = await dispatcher.run_once()  # nothing is due: they are 'sending'
            await dispatcher.recover()
            return before, await dispatcher.run_once()

        assert with_outbox(pg_url, PHONES, body) == (0, 3)
        assert len(fake.received) == 3


def test_console_provider_masks_numbers() -> None:
    out = io.StringIO()
    sms = OutgoingSms(7, "67901001", "patrol", "张三", "+8613812345678", "水位达到771.54米")
    assert asyncio.run(ConsoleProvider(out).send(sms)) == "console-7"
    assert (
        out.getvalue()
        == "SMS #7 to 巡查责任人 张三 **********5678 (station 67901001): 水位达到771.54米\n"
    )
