"""Sending the outbox through the real twilio client to a local Twilio-compatible server."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from hydro.config import DatabaseConfig, SmsConfig
from hydro.duty import DutyRoster, load_roster
from hydro.models import Channel, Notification, Recipient, Role
from hydro.notify.dispatcher import Dispatcher
from hydro.notify.providers import ConsoleProvider, SmsError, TwilioProvider
from hydro.store.db import open_pool
from hydro.store.schema import migrate
from tests.support import wait_until
from tests.twilio_server import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

T = TypeVar("T")
PHONES = ["+8613800000001", "+8613900000002", "+8615800000003"]


NOBODY = DutyRoster()  # no roster, no sms.duty_officers


def desk(config: SmsConfig) -> DutyRoster:
    """No roster: the duty desk is sms.duty_officers."""
    return DutyRoster(fallback=config.duty_officers)


def sms_config(**overrides: Any) -> SmsConfig:
    return SmsConfig.model_validate({"retry_first": "10ms", "rate_per_second": 1000, **overrides})


def with_outbox(
    pg_url: str, phones: list[str], body: Callable[[AsyncConnectionPool], Awaitable[T]]
) -> T:
    async def main() -> T:
        async with open_pool(database(pg_url)) as pool:
            async with pool.connection() as conn:
                await migrate(conn, database(pg_url), "Asia/Shanghai")
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


def database(pg_url: str) -> DatabaseConfig:
    return DatabaseConfig(url=pg_url, timescaledb="off")


def twilio(fake: FakeTwilio, timeout: float = 10.0) -> TwilioProvider:
    return TwilioProvider(
        ACCOUNT_SID, AUTH_TOKEN, "+15005550006", base_url=fake.base_url, timeout=timeout
    )


def outbox(pg_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(
            "SELECT role, phone, status, attempts, provider_id, last_error FROM outbox ORDER BY id"
        ).fetchall()


def test_queued_sms_go_out_once_each_with_their_provider_ids(pg_url: str) -> None:
    with FakeTwilio() as fake:

        async def body(pool: AsyncConnectionPool) -> tuple[int, int]:
            dispatcher = Dispatcher(sms_config(), twilio(fake), pool, NOBODY)
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
            dispatcher = Dispatcher(sms_config(), twilio(fake), pool, NOBODY)
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
            dispatcher = Dispatcher(config, twilio(fake), pool, desk(config))
            await dispatcher.run_once()  # fails the alert SMS, queues the notice
            await dispatcher.run_once()  # sends the notice

        with_outbox(pg_url, PHONES[:1], body)
        assert [m.to for m in fake.received] == ["+8613800000001", "+8613700000009"]
        # these rows belong to no alert (a desk SMS): not called an alert SMS
        assert "测站67901001的行政责任人p0(**********0001)未能收到短信" in fake.received[1].body
    failed, notice = outbox(pg_url)
    assert failed[2:4] == ("failed", 1)
    assert "21211" in failed[5]
    assert notice[:3] == ("duty", "+8613700000009", "sent")


@pytest.mark.parametrize(
    ("failed_at", "told"),
    [
        ("2026-12-01 19:59", ["+8613800000011", "+8613800000013"]),  # shift A and the leader
        ("2026-12-01 20:00", ["+8613800000012", "+8613800000013"]),  # B has taken over
        ("2026-12-02 08:00", ["+8613700000009"]),  # past the roster: sms.duty_officers
    ],
)
def test_a_failed_sms_is_told_to_whoever_is_on_duty_when_it_fails(
    pg_url: str, tmp_path: Path, failed_at: str, told: list[str]
) -> None:
    roster = tmp_path / "duty_roster.csv"
    roster.write_text(
        "start,end,role,name,phone\n"
        "2026-12-01 08:00,2026-12-01 20:00,值班员,甲,+8613800000011\n"
        "2026-12-01 20:00,2026-12-02 08:00,值班员,乙,+8613800000012\n"
        "2026-12-01 08:00,2026-12-02 08:00,带班领导,丙,+8613800000013\n",
        encoding="utf-8",
    )
    config = sms_config(duty_officers=[{"name": "值班员", "phone": "+8613700000009"}])
    on_duty = load_roster(roster, "Asia/Shanghai", config.duty_officers, today=dt.date(2026, 12, 1))
    now = dt.datetime.fromisoformat(failed_at).replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    with FakeTwilio() as fake:
        fake.answers.append((400, 21211))

        async def body(pool: AsyncConnectionPool) -> None:
            dispatcher = Dispatcher(config, twilio(fake), pool, on_duty, clock=lambda: now)
            await dispatcher.run_once()  # fails the alert SMS, queues the notices

        with_outbox(pg_url, PHONES[:1], body)
    notices = outbox(pg_url)[1:]
    assert [phone for _, phone, *_ in notices] == told
    assert all(status == "queued" for _, _, status, *_ in notices)


def test_rows_left_sending_by_a_hydro_from_before_leases_are_sent_again(pg_url: str) -> None:
    with FakeTwilio() as fake:

        async def body(pool: AsyncConnectionPool) -> int:
            async with pool.connection() as conn:
                await conn.execute("UPDATE outbox SET status = 'sending', attempts = 1")
            return await Dispatcher(sms_config(), twilio(fake), pool, NOBODY).run_once()

        assert with_outbox(pg_url, PHONES, body) == 3
        assert len(fake.received) == 3


def test_a_standby_starting_while_the_first_process_is_sending_does_not_send_again(
    pg_url: str,
) -> None:
    """Two dispatchers on two pools, as two ``hydro run`` on two hosts: the second starts (and
    recovers) while the first waits for a slow provider."""
    with FakeTwilio() as fake:
        fake.answer_after = 1.5

        async def body(first_pool: AsyncConnectionPool) -> tuple[int, int]:
            first = Dispatcher(sms_config(), twilio(fake), first_pool, NOBODY)
            sending = asyncio.create_task(first.run_once())
            await wait_until(lambda: len(fake.received) == 3, what="three SMS in flight")
            async with open_pool(database(pg_url)) as second_pool:
                standby = Dispatcher(sms_config(), twilio(fake), second_pool, NOBODY)
                await standby.recover()
                doubled = await standby.run_once()
            return await sending, doubled

        assert with_outbox(pg_url, PHONES, body) == (3, 0)
        assert len(fake.received) == 3
    assert [(r[2], r[3]) for r in outbox(pg_url)] == [("sent", 1)] * 3


def test_a_row_whose_sender_died_is_sent_again_once_when_its_lease_expires(pg_url: str) -> None:
    """The first dispatcher claims a row and dies while the provider holds the request; the
    standby leaves the row alone while the lease holds, then sends it exactly once."""
    config = sms_config(provider_timeout="3s", claim_lease="6s")
    with FakeTwilio() as fake:
        fake.stop_answering()

        async def body(first_pool: AsyncConnectionPool) -> list[int]:
            first = Dispatcher(config, twilio(fake, 3.0), first_pool, desk(config))
            dying = asyncio.create_task(first.run_once())
            await wait_until(lambda: len(fake.received) == 1, what="the SMS in flight")
            dying.cancel()  # the process is gone: nothing of it records anything any more
            fake.answer_again()
            async with open_pool(database(pg_url)) as second_pool:
                standby = Dispatcher(config, twilio(fake), second_pool, desk(config))
                await standby.recover()
                sent = [await standby.run_once()]  # the lease holds
                deadline = time.monotonic() + 30
                while not sent[-1] or len(sent) == 1:
                    assert time.monotonic() < deadline, "the lease never ran out"
                    await asyncio.sleep(0.1)
                    sent.append(await standby.run_once())
                for _ in range(2):
                    sent.append(await standby.run_once())
            return [sent[0], *sent[-3:]]

        assert with_outbox(pg_url, PHONES[:1], body) == [0, 1, 0, 0]
        assert [m.to for m in fake.received] == [PHONES[0]] * 2
    [(_, _, status, attempts, provider_id, _)] = outbox(pg_url)
    assert (status, attempts) == ("sent", 2)
    assert provider_id == fake.received[1].sid


def test_the_twilio_client_gives_up_on_a_server_that_never_answers() -> None:
    sms = Notification(
        Recipient(Role.PATROL, "张三", PHONES[0]), "msg", station="67901001", outbox_id=1
    )
    with FakeTwilio() as fake:
        fake.stop_answering()
        with pytest.raises(SmsError, match="timed out") as raised:
            asyncio.run(twilio(fake, 0.3).send(sms))
    assert raised.value.retryable


def test_a_row_that_waits_long_for_its_turn_keeps_its_claim_while_a_standby_polls(
    pg_url: str,
) -> None:
    """One at a time through a slow provider: the last rows start after their first lease would
    have run out, so they are renewed before their call (or, if the standby already took one
    over, left to it). A standby polling all along sends nothing twice."""
    config = sms_config(concurrency=1, provider_timeout="1s", claim_lease="3s")
    phones = [f"+861380000100{i}" for i in range(5)]
    with FakeTwilio() as fake:
        fake.answer_after = 0.8

        async def body(first_pool: AsyncConnectionPool) -> None:
            first = Dispatcher(config, twilio(fake, 1.0), first_pool, desk(config))
            sending = asyncio.create_task(first.run_once())
            async with open_pool(database(pg_url)) as second_pool:
                standby = Dispatcher(config, twilio(fake, 1.0), second_pool, desk(config))
                while not sending.done() or {r[2] for r in outbox(pg_url)} != {"sent"}:
                    await standby.run_once()
                    await asyncio.sleep(0.05)
            await sending

        with_outbox(pg_url, phones, body)
        assert sorted(m.to for m in fake.received) == phones


def test_a_provider_that_never_answers_times_out_and_the_sms_is_retried(pg_url: str) -> None:
    """The dispatcher's own limit, whatever the provider does (the twilio client's is longer
    here, so it is the dispatcher's that fires)."""
    config = sms_config(provider_timeout="300ms", claim_lease="1s")
    with FakeTwilio() as fake:
        fake.stop_answering()

        async def body(pool: AsyncConnectionPool) -> list[Any]:
            dispatcher = Dispatcher(config, twilio(fake, 5.0), pool, desk(config))
            assert await dispatcher.run_once() == 1
            stuck = outbox(pg_url)[0]
            fake.answer_again()
            await wait_until(lambda: outbox(pg_url)[0][2] == "queued", what="the retry")
            while outbox(pg_url)[0][2] != "sent":
                await dispatcher.run_once()
                await asyncio.sleep(0.02)
            return list(stuck)

        stuck = with_outbox(pg_url, PHONES[:1], body)
        assert len(fake.received) == 2
    assert stuck[2:4] == ["queued", 1]
    assert "did not answer within 0.3s" in stuck[5]
    assert outbox(pg_url)[0][2:4] == ("sent", 2)


def test_no_log_record_and_no_error_holds_the_account_sid_or_the_auth_token(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The twilio client logs each request's URL, /Accounts/<SID>/Messages.json, and a refused
    connection's error names it too."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="twilio.http_client")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{closed.getsockname()[1]}"
    with FakeTwilio() as fake:

        async def body(pool: AsyncConnectionPool) -> None:
            await Dispatcher(sms_config(), twilio(fake), pool, NOBODY).run_once()
            unreachable = TwilioProvider(
                ACCOUNT_SID, AUTH_TOKEN, "+15005550006", base_url=nobody, timeout=1.0
            )
            async with pool.connection() as conn:
                await conn.execute(
                    "INSERT INTO outbox (role, person, phone, body)"
                    " VALUES ('duty', 'd', '+8613700000009', 'x')"
                )
            await Dispatcher(sms_config(), unreachable, pool, NOBODY).run_once()

        with_outbox(pg_url, PHONES[:1], body)
        assert len(fake.received) == 1
    sent, refused = outbox(pg_url)
    assert sent[2] == "sent"
    assert refused[2] == "queued"
    assert "twilio unreachable" in refused[5]
    assert any(r.name == "twilio.http_client" for r in caplog.records)
    texts = [r.getMessage() for r in caplog.records] + [refused[5]]
    for secret in (ACCOUNT_SID, AUTH_TOKEN):
        assert not [text for text in texts if secret in text]


def test_console_provider_masks_numbers() -> None:
    out = io.StringIO()
    sms = Notification(
        Recipient(Role.PATROL, "张三", "+8613812345678"),
        "水位达到771.54米",
        station="67901001",
        outbox_id=7,
    )
    assert asyncio.run(ConsoleProvider(out).send(sms)) == "console-7"
    assert (
        out.getvalue()
        == "SMS #7 to 巡查责任人 张三 **********5678 (station 67901001): 水位达到771.54米\n"
    )


@pytest.mark.parametrize(
    ("answers", "pressed"),
    [
        ("first", ["1", None, "1", "1"]),
        ("odd_alerts", ["1", None, None, "1"]),
        ("none", [None, None, None, None]),
    ],
)
def test_console_calls_are_answered_by_a_fixed_pattern(
    answers: Literal["first", "odd_alerts", "none"], pressed: list[str | None]
) -> None:
    """Calls of alerts 1, 1, 2, 3: what the simulated person pressed in each."""
    heard: list[tuple[int | None, str, str | None]] = []

    async def answer(call: Notification, sid: str, digits: str | None) -> None:
        heard.append((call.outbox_id, sid, digits))

    console = ConsoleProvider(io.StringIO(), answers=answers, answer=answer)
    person = Recipient(Role.PATROL, "王五", "+8613800000003")
    for outbox_id, alert in enumerate([1, 1, 2, 3], start=1):
        call = Notification(person, "水位", Channel.VOICE, "67901001", alert, outbox_id)
        assert asyncio.run(console.send(call)) == f"console-call-{outbox_id}"
    assert heard == [(i, f"console-call-{i}", p) for i, p in enumerate(pressed, start=1)]
