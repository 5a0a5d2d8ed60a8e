"""Voice calls (叫应) end to end: queued in the outbox, placed by the real dispatcher through the
real twilio client at the local Twilio-compatible server, answered by key presses and ended by
status callbacks posted, signed as Twilio signs them, to the API's webhooks on a real
PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from psycopg_pool import AsyncConnectionPool

from hydro import app
from hydro.api import listen
from hydro.config import Config
from hydro.duty import DutyRoster
from hydro.models import Channel, Notification, Recipient, Role, mask_phone
from hydro.notify.dispatcher import Dispatcher
from hydro.notify.providers import ConsoleProvider
from hydro.store.outbox import enqueue
from tests.support import REPO, InApiLoop, api_in_thread, fetch
from tests.twilio_server import ACCOUNT_SID, FakeTwilio, PlacedCall

NOBODY = DutyRoster()  # no roster, no sms.duty_officers

WANG = Recipient(Role.PATROL, "王五", "+8613800000003")
LI = Recipient(Role.TECHNICAL, "李四", "+8613800000002")
TEXT = "【红色预警】麦冲水库水位772.10米,超设计洪水位。"


@dataclass
class Voice:
    url: str
    pg_url: str
    twilio: FakeTwilio
    config: Config
    run: InApiLoop

    def queue(self, *to: Recipient, channel: Channel = Channel.VOICE) -> list[int]:
        """Calls (or SMS) about a new red alert at 麦冲水库; their outbox ids."""
        alert = fetch(
            self.pg_url,
            "INSERT INTO alerts (station, family, rule_id, rank, severity, state, opened_at)"
            " VALUES ('67901001', (SELECT 'family' || count(*) FROM alerts),"
            " 'reservoir_design_flood', 3, 'red', 'open', now()) RETURNING id",
        )[0][0]

        async def body(pool: AsyncConnectionPool) -> list[int]:
            async with pool.connection() as conn:
                return [
                    await enqueue(
                        conn,
                        Notification(r, TEXT, channel=channel, station="67901001", alert_id=alert),
                    )
                    for r in to
                ]

        ids: list[int] = self.run(body)
        return ids

    def dispatch(self, dispatchers: int = 1) -> None:
        """Sends what is due, retries included, with this many dispatchers side by side."""

        async def body(pool: AsyncConnectionPool) -> None:
            senders = [
                Dispatcher(
                    self.config.sms,
                    app.sms_provider(self.config),
                    pool,
                    app.load_duty_roster(self.config),
                    self.config.voice,
                )
                for _ in range(dispatchers)
            ]
            for _ in range(100):
                await asyncio.gather(*(d.run_once() for d in senders))
                if not outbox_left(self.pg_url):
                    return
                await asyncio.sleep(0.02)

        self.run(body)

    def placed(self) -> list[PlacedCall]:
        return [call for call in self.twilio.calls if call.sid]

    def call(self, person: Recipient) -> tuple[int, PlacedCall]:
        """One call to ``person`` queued and placed: its outbox id and the call Twilio got."""
        [outbox_id] = self.queue(person)
        self.dispatch()
        [call] = self.placed()
        return outbox_id, call


def outbox_left(pg_url: str) -> int:
    return int(
        fetch(pg_url, "SELECT count(*) FROM outbox WHERE status IN ('queued', 'sending')")[0][0]
    )


def confirmations(pg_url: str) -> list[tuple[Any, ...]]:
    return fetch(
        pg_url,
        "SELECT alert_id, person, answer, recorded_by, outbox_id FROM confirmations ORDER BY id",
    )


def _config(pg_url: str, fake: FakeTwilio, public_url: str) -> Config:
    return Config.model_validate(
        {
            "database": {"url": pg_url, "timescaledb": "off"},
            "registry": {"stations": str(REPO / "stations")},
            "alerting": {"rules": str(REPO / "alert_rules")},
            "sms": fake.sms_section(
                duty_officers=[{"name": "值班员", "phone": "+8613900000000"}], retry_first="10ms"
            ),
            "voice": {"calls_per_second": 1000},
            "api": {"port": 0, "public_url": public_url},
        }
    )


@pytest.fixture
def voice(pg_url: str) -> Iterator[Voice]:
    """The API served in a thread of its own, its pool shared with the dispatchers."""
    listener = listen("127.0.0.1", 0)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    with FakeTwilio() as fake:
        config = _config(pg_url, fake, url)
        with api_in_thread(config, listener) as run:
            yield Voice(url, pg_url, fake, config, run)


def test_a_queued_call_is_placed_once_in_mandarin_asking_for_1(voice: Voice) -> None:
    [outbox_id] = voice.queue(WANG)
    voice.dispatch()
    voice.dispatch()
    assert voice.twilio.received == []  # not a word through the Messages API
    [call] = voice.twilio.calls
    assert (call.to, call.status_events) == (WANG.phone, ["completed"])
    assert call.status_callback == f"{voice.url}/api/v1/twilio/call-status"
    script = ET.fromstring(call.twiml)
    gathers = script.findall("Gather")
    assert len(gathers) == 2  # said once more when nothing is pressed
    for gather in gathers:
        assert gather.attrib["numDigits"] == "1"
        assert gather.attrib["action"] == (
            f"{voice.url}/api/v1/twilio/gather?outbox={outbox_id}&try=1"
        )
        said = [(say.attrib["language"], say.text) for say in gather.findall("Say")]
        assert said == [("cmn-CN", TEXT), ("cmn-CN", "请按1确认收到。")]
    assert all(s.attrib.get("voice") == "Polly.Zhiyu" for s in script.iter("Say"))
    assert fetch(voice.pg_url, "SELECT channel, status, attempts, provider_id FROM outbox") == [
        ("voice", "sent", 1, call.sid)
    ]


def test_pressing_1_confirms_once_however_often_it_comes(voice: Voice) -> None:
    outbox_id, call = voice.call(WANG)
    status, twiml = voice.twilio.press(call, "1")
    assert status == 200
    assert [s.text for s in ET.fromstring(twiml).iter("Say")] == ["已确认,谢谢。"]
    alert = fetch(voice.pg_url, "SELECT alert_id FROM outbox")[0][0]
    assert confirmations(voice.pg_url) == [(alert, "王五", "keypress", "王五", outbox_id)]
    assert voice.twilio.press(call, "1")[0] == 200  # replayed: thanked, nothing new
    assert len(confirmations(voice.pg_url)) == 1


def test_another_key_is_asked_again_once_and_records_nothing(voice: Voice) -> None:
    outbox_id, call = voice.call(WANG)
    status, twiml = voice.twilio.press(call, "2")
    assert status == 200
    again = call.gather_url(twiml)
    assert parse_qs(urlsplit(again).query) == {"outbox": [str(outbox_id)], "try": ["2"]}
    assert confirmations(voice.pg_url) == []
    status, twiml = voice.twilio.press(call, "9", url=again)
    assert ET.fromstring(twiml).find(".//Gather") is None  # no third chance: goodbye
    assert confirmations(voice.pg_url) == []
    assert voice.twilio.press(call, "1", url=again)[0] == 200  # 1 on the second chance counts
    assert len(confirmations(voice.pg_url)) == 1


def test_unsigned_or_forged_webhooks_get_403_and_change_nothing(voice: Voice) -> None:
    _, call = voice.call(WANG)
    assert voice.twilio.press(call, "1", sign=False)[0] == 403
    assert voice.twilio.report_call(call, "completed", sign=False) == 403
    assert confirmations(voice.pg_url) == []
    assert fetch(voice.pg_url, "SELECT call_status FROM outbox") == [(None,)]
    assert fetch(voice.pg_url, "SELECT count(*) FROM delivery_receipts") == [(0,)]


def test_the_final_call_status_lands_on_its_row_once(voice: Voice) -> None:
    wang_id, li_id = voice.queue(WANG, LI)
    voice.dispatch()
    wang, li = sorted(voice.placed(), key=lambda c: c.to != WANG.phone)
    assert voice.twilio.report_call(wang, "no-answer") == 204
    assert voice.twilio.report_call(li, "busy") == 204
    assert voice.twilio.report_call(wang, "completed") == 204  # a second final status: kept only
    rows = fetch(voice.pg_url, "SELECT phone, status, call_status FROM outbox ORDER BY id")
    assert rows == [(WANG.phone, "sent", "no-answer"), (LI.phone, "sent", "busy")]
    assert fetch(voice.pg_url, "SELECT count(*) FROM outbox WHERE role = 'duty'") == [(0,)]
    listed = subprocess.run(
        [sys.executable, "-m", "hydro", "outbox", "list"],
        env={
            **os.environ,
            "HYDRO_DATABASE__URL": voice.pg_url,
            "HYDRO_DATABASE__TIMESCALEDB": "off",
        },
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert [line.split(" ", 2)[:2] for line in listed] == [
        ["CALL", f"#{li_id}"],
        ["CALL", f"#{wang_id}"],
    ]
    assert f"id={wang.sid} call=no-answer: {TEXT}" in listed[1]


def test_a_status_for_an_unknown_call_is_kept_and_changes_nothing(voice: Voice) -> None:
    _, call = voice.call(WANG)
    assert voice.twilio.report_call(call, "failed", sid="CA" + "f" * 32) == 204
    assert fetch(voice.pg_url, "SELECT status, call_status FROM outbox") == [("sent", None)]
    assert fetch(voice.pg_url, "SELECT provider_id, status FROM delivery_receipts") == [
        ("CA" + "f" * 32, "failed")
    ]


def test_a_429_is_retried_and_the_call_placed_once(voice: Voice) -> None:
    voice.queue(WANG)
    voice.twilio.answers.extend([(429, 20429), (503, 20503)])
    voice.dispatch()
    assert len(voice.twilio.calls) == 3
    assert len(voice.placed()) == 1
    assert fetch(voice.pg_url, "SELECT status, attempts, provider_id FROM outbox") == [
        ("sent", 3, voice.placed()[0].sid)
    ]


def test_two_dispatchers_place_one_call_per_row(voice: Voice) -> None:
    ids = voice.queue(*(Recipient(Role.PATROL, f"p{i}", f"+86138000000{i:02d}") for i in range(8)))
    voice.dispatch(dispatchers=2)
    gathered = sorted(
        int(parse_qs(urlsplit(call.gather_url()).query)["outbox"][0]) for call in voice.twilio.calls
    )
    assert gathered == ids


def test_a_refused_call_fails_at_once_and_the_duty_officer_is_told(voice: Voice) -> None:
    voice.queue(WANG)
    voice.twilio.answers.append((400, 21211))
    voice.dispatch()
    failed, notice = fetch(
        voice.pg_url, "SELECT channel, status, body, last_error FROM outbox ORDER BY id"
    )
    assert failed[:2] == ("voice", "failed")
    assert "21211" in failed[3]
    assert ACCOUNT_SID not in failed[3]
    assert notice[:2] == ("sms", "sent")  # by SMS, through the Messages API
    assert "未能收到预警电话" in notice[2]
    assert [m.to for m in voice.twilio.received] == ["+8613900000000"]


def test_sms_and_calls_each_go_through_their_own_api(voice: Voice) -> None:
    voice.queue(WANG)
    voice.queue(LI, channel=Channel.SMS)
    voice.dispatch()
    assert [c.to for c in voice.twilio.calls] == [WANG.phone]
    assert [(m.to, m.body) for m in voice.twilio.received] == [(LI.phone, TEXT)]


def test_console_calls_answer_as_configured_through_the_webhooks_own_path(voice: Voice) -> None:
    first, second = voice.queue(WANG, LI)
    out = io.StringIO()

    async def body(pool: AsyncConnectionPool) -> None:
        console = ConsoleProvider(out, answers="first", answer=app.console_answer(pool))
        await Dispatcher(voice.config.sms, console, pool, NOBODY, voice.config.voice).run_once()

    voice.run(body)
    printed = out.getvalue().splitlines()
    assert (
        printed[0]
        == f"CALL #{first} to 巡查责任人 王五 {mask_phone(WANG.phone)} (station 67901001): {TEXT}"
    )
    assert printed[1] == f"CALL #{first} answered by 王五: pressed 1"
    assert printed[3] == f"CALL #{second} not answered"
    assert [c[1:] for c in confirmations(voice.pg_url)] == [("王五", "keypress", "王五", first)]
    assert fetch(voice.pg_url, "SELECT status, call_status FROM outbox ORDER BY id") == [
        ("sent", "completed"),
        ("sent", "no-answer"),
    ]


def test_a_calls_api_that_hangs_times_out_and_the_call_is_placed_once_on_the_retry(
    voice: Voice,
) -> None:
    voice.queue(WANG)
    voice.twilio.stop_answering()
    quick = {
        "provider_timeout": dt.timedelta(milliseconds=300),
        "claim_lease": dt.timedelta(seconds=1),
    }
    sms = voice.config.sms.model_copy(update=quick)

    async def body(pool: AsyncConnectionPool) -> None:
        dispatcher = Dispatcher(
            sms, app.sms_provider(voice.config), pool, NOBODY, voice.config.voice
        )
        assert await dispatcher.run_once() == 1  # the request hangs: timed out
        voice.twilio.answer_again()  # the hung request is dropped unanswered
        for _ in range(200):
            if not outbox_left(voice.pg_url):
                return
            await dispatcher.run_once()
            await asyncio.sleep(0.02)

    voice.run(body)
    assert len(voice.twilio.calls) == 2
    [call] = voice.placed()
    assert fetch(voice.pg_url, "SELECT status, attempts, provider_id, last_error FROM outbox") == [
        ("sent", 2, call.sid, None)
    ]


def test_calls_start_no_faster_than_voice_calls_per_second(voice: Voice) -> None:
    """Five calls at 10 per second (SMS at 1000) take at least four tenths of a second from the
    first to the last (a lower bound, less the jitter of two arrivals: load only spreads them)."""
    voice.queue(*(Recipient(Role.PATROL, f"p{i}", f"+86138000000{i:02d}") for i in range(5)))
    paced = voice.config.voice.model_copy(update={"calls_per_second": 10.0})
    fast_sms = voice.config.sms.model_copy(update={"rate_per_second": 1000.0})

    async def body(pool: AsyncConnectionPool) -> None:
        dispatcher = Dispatcher(fast_sms, app.sms_provider(voice.config), pool, NOBODY, paced)
        while await dispatcher.run_once():
            pass

    voice.run(body)
    starts = sorted(call.at for call in voice.twilio.calls)
    assert len(starts) == 5
    assert starts[-1] - starts[0] >= 0.3


def test_sms_waiting_for_their_pace_do_not_hold_a_call_back(voice: Voice) -> None:
    """Four SMS at 4 a second with one request in flight each wait their turn; the call queued
    after them has slots of its own and goes at once, not after the last SMS (0.75 s later)."""
    voice.queue(
        *(Recipient(Role.PATROL, f"s{i}", f"+86138000001{i:02d}") for i in range(4)),
        channel=Channel.SMS,
    )
    voice.queue(WANG)
    slow_sms = voice.config.sms.model_copy(update={"rate_per_second": 4.0, "concurrency": 1})

    async def body(pool: AsyncConnectionPool) -> None:
        sender = Dispatcher(
            slow_sms, app.sms_provider(voice.config), pool, NOBODY, voice.config.voice
        )
        while await sender.run_once():
            pass

    voice.run(body)
    [call] = voice.twilio.calls
    assert len(voice.twilio.received) == 4
    assert call.at < max(m.at for m in voice.twilio.received)
