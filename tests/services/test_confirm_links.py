"""Confirmations (叫应) against a real PostgreSQL: the personal links the evaluator's SMS carry
(the page confirms on POST only; forged, expired and replayed codes change nothing), an
operator's confirmation on a person's behalf, and the alert's detail that shows them."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml
from psycopg_pool import AsyncConnectionPool

from hydro import app
from hydro.alerts.evaluator import AlertEvaluator
from hydro.alerts.ladder_runner import LadderRunner
from hydro.cli import main
from hydro.config import Config
from hydro.models import (
    AlertChange,
    AlertChangeKind,
    Answer,
    Notification,
    Reading,
    Recipient,
    Role,
)
from hydro.store.alerts import RecordedChange, record_changes
from hydro.store.confirmations import confirmations_of
from hydro.store.links import Links
from hydro.store.readings import ReadingWriter
from tests.support import HEFENG, REPO, api_client, fetch, migrated

MAICHONG = "67901001"  # 麦冲水库: 771.54 is above its normal level, a yellow alert
PUBLIC_URL = "https://hydro.example.org"
NOW = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
VIEWER = "viewer-token-0123456789"
OPERATOR = "operator-token-0123456789"
LINK = re.compile(r" 确认https://hydro\.example\.org/c/([A-Za-z0-9_-]{11})$")


def _config(pg_url: str) -> Config:
    return Config.model_validate(_settings(pg_url))


def _settings(pg_url: str) -> dict[str, object]:
    return {
        "database": {"url": pg_url, "timescaledb": "off"},
        "registry": {"stations": str(REPO / "stations")},
        "alerting": {"rules": str(REPO / "alert_rules")},
        "sms": {"duty_officers": [{"name": "值班甲", "phone": "+8613900000009"}]},
        "api": {
            "public_url": PUBLIC_URL,
            "link_tries_per_minute": 10,
            "tokens": f"wang:viewer:{VIEWER},li:operator:{OPERATOR}",
        },
    }


Body = Callable[[httpx.AsyncClient, AsyncConnectionPool], Awaitable[None]]


def with_alerts(pg_url: str, body: Body) -> None:
    """An orange alert at 禾丰水文站 (超保证水位, a ladder with links) and a yellow one at 麦冲水库
    (SMS only), made by the evaluator; ``body`` gets a client of the API and the pool."""
    config = _config(pg_url)

    async def main() -> None:
        registry, rules = app.load_stations(config), app.load_alert_rules(config)
        async with api_client(config) as (client, context):
            links = app.confirmation_links(config)
            evaluator = AlertEvaluator(
                config.alerting, registry, rules, context.pool, clock=lambda: NOW, links=links
            )
            await evaluator.load_state()
            writer = ReadingWriter(context.pool)
            at = NOW - dt.timedelta(minutes=5)
            await writer.write([Reading(HEFENG, at, water_level=910.2)])
            await writer.write([Reading(MAICHONG, at, water_level=771.54)])
            await evaluator.tick()
            await body(client, context.pool)

    asyncio.run(main())


def sms_of(pg_url: str, station: str) -> list[str]:
    rows = fetch(pg_url, "SELECT body FROM outbox WHERE station = %s ORDER BY id", (station,))
    return [str(body) for (body,) in rows]


async def answers(pool: AsyncConnectionPool) -> list[tuple[str, Answer, dt.datetime]]:
    async with pool.connection() as conn:
        found = await confirmations_of(conn, [1, 2])
    return [(c.recipient.role.value, c.answer, c.confirmed_at) for cs in found.values() for c in cs]


def test_each_persons_sms_ends_with_their_own_link_and_only_post_confirms(pg_url: str) -> None:
    async def body(client: httpx.AsyncClient, pool: AsyncConnectionPool) -> None:
        orange = sms_of(pg_url, HEFENG)
        codes = [match.group(1) for text in orange if (match := LINK.search(text))]
        assert len(codes) == len(orange) == 3
        assert len(set(codes)) == 3
        assert all(LINK.search(text) is None for text in sms_of(pg_url, MAICHONG))  # yellow
        page = await client.get(f"/c/{codes[2]}")
        assert page.status_code == 200
        assert "确认收到</button>" in page.text
        assert "禾丰水文站" in page.text
        assert page.headers["cache-control"] == "no-store"
        assert await answers(pool) == []  # a link scanner's GET confirms nothing
        first = await client.post(f"/c/{codes[2]}")
        assert (first.status_code, "已确认" in first.text) == (200, True)
        [(role, answer, at)] = await answers(pool)
        assert (role, answer) == ("patrol", Answer.LINK)
        again = await client.post(f"/c/{codes[2]}")
        assert again.status_code == 200
        assert await answers(pool) == [(role, answer, at)]  # pressed twice: the first stands
        shown = await client.get(f"/c/{codes[2]}")
        assert "确认收到</button>" not in shown.text

    with_alerts(pg_url, body)


def test_after_an_escalation_the_link_asks_again(pg_url: str) -> None:
    """A confirmation answers the rank the alert stood at: once it escalates, the same link
    shows the button again and a press records an answer to the new rank."""

    async def body(client: httpx.AsyncClient, pool: AsyncConnectionPool) -> None:
        [code, *_] = [m.group(1) for t in sms_of(pg_url, HEFENG) if (m := LINK.search(t))]
        assert (await client.post(f"/c/{code}")).status_code == 200
        assert "确认收到</button>" not in (await client.get(f"/c/{code}")).text
        async with pool.connection() as conn:
            await conn.execute(
                "UPDATE alerts SET rank = rank + 1, severity = 'red' WHERE station = %s",
                (HEFENG,),
            )
        assert "确认收到</button>" in (await client.get(f"/c/{code}")).text
        assert (await client.post(f"/c/{code}")).status_code == 200
        async with pool.connection() as conn:
            found = await confirmations_of(conn, [1, 2])
        assert sorted(c.rank or 0 for cs in found.values() for c in cs) == [2, 3]

    with_alerts(pg_url, body)


def test_forged_and_expired_codes_get_a_page_saying_so_and_change_nothing(pg_url: str) -> None:
    async def body(client: httpx.AsyncClient, pool: AsyncConnectionPool) -> None:
        [code, *_] = [m.group(1) for t in sms_of(pg_url, HEFENG) if (m := LINK.search(t))]
        for forged in ("AAAAAAAAAAA", code[:-1] + ("A" if code[-1] != "A" else "B"), "x", "é"):
            for method in ("GET", "POST"):
                answer = await client.request(method, f"/c/{forged}")
                assert answer.status_code == 404, (forged, method)
                assert "链接无效" in answer.text
        with psycopg.connect(pg_url) as conn:
            conn.execute(
                "UPDATE confirmation_links SET expires_at = now() - interval '1 second'"
                " WHERE code = %s",
                (code,),
            )
        for method in ("GET", "POST"):
            expired = await client.request(method, f"/c/{code}")
            assert (expired.status_code, "链接已过期" in expired.text) == (410, True)
        assert await answers(pool) == []

    with_alerts(pg_url, body)


def test_tries_are_limited_per_client_and_per_code(pg_url: str) -> None:
    async def body(client: httpx.AsyncClient, pool: AsyncConnectionPool) -> None:
        statuses = [(await client.get(f"/c/Guess{n:06d}")).status_code for n in range(11)]
        assert statuses == [404] * 10 + [429]
        [code, *_] = [m.group(1) for t in sms_of(pg_url, HEFENG) if (m := LINK.search(t))]
        assert (await client.post(f"/c/{code}")).status_code == 429  # this client is blocked
        others = []
        for n in range(11):  # many addresses, one code: the code is limited too
            transport = httpx.ASGITransport(app=client._transport.app, client=(f"10.0.0.{n}", 1))  # type: ignore[attr-defined]
            async with httpx.AsyncClient(transport=transport, base_url="http://hydro") as other:
                others.append((await other.get(f"/c/{code}")).status_code)
        assert others == [200] * 10 + [429]
        assert await answers(pool) == []

    with_alerts(pg_url, body)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_operator_confirms_for_a_person_a_viewer_may_not(pg_url: str) -> None:
    async def body(client: httpx.AsyncClient, pool: AsyncConnectionPool) -> None:
        url = "/api/v1/alerts/1/confirmations"
        note = {"role": "technical", "note": "电话已联系"}
        assert (await client.post(url, json=note, headers=auth(VIEWER))).status_code == 403
        assert await answers(pool) == []
        first = await client.post(url, json=note, headers=auth(OPERATOR))
        assert first.status_code == 201
        assert first.json()["answer"] == "operator"
        assert (first.json()["recorded_by"], first.json()["note"]) == ("li", "电话已联系")
        assert first.json()["phone"].startswith("*")
        again = await client.post(url, json={"role": "technical"}, headers=auth(OPERATOR))
        assert again.status_code == 200
        assert again.json() == first.json()
        county = await client.post(url, json={"role": "county"}, headers=auth(OPERATOR))
        assert county.status_code == 201  # the county's 防汛负责人 of 开阳县
        for wrong, status in (
            ({"phone": "+8613000000000"}, 422),
            ({}, 422),
            ({"role": "mayor"}, 422),
        ):
            answer = await client.post(url, json=wrong, headers=auth(OPERATOR))
            assert answer.status_code == status, (wrong, answer.text)
        missing = "/api/v1/alerts/999/confirmations"
        assert (await client.post(missing, json=note, headers=auth(OPERATOR))).status_code == 404
        detail = (await client.get("/api/v1/alerts/1", headers=auth(VIEWER))).json()
        assert [c["role"] for c in detail["confirmations"]] == ["technical", "county"]
        assert detail["wake_up_seconds"] > 0

    with_alerts(pg_url, body)


def test_the_alert_detail_shows_its_ladder_and_hydro_alerts_confirm_stops_it(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({k: v for k, v in _settings(pg_url).items() if k != "api"}),
        encoding="utf-8",
    )

    async def body(client: httpx.AsyncClient, pool: AsyncConnectionPool) -> None:
        duty = (Recipient(Role.DUTY, "值班甲", "+8613900000009"),)
        registry, rules = app.load_stations(_config(pg_url)), app.load_alert_rules(_config(pg_url))
        runner = LadderRunner(registry, rules, pool, lambda _: duty, clock=lambda: NOW)
        [call] = await runner.run()
        assert call.step.key == "orange:call:technical:1"
        detail = (await client.get("/api/v1/alerts/1", headers=auth(VIEWER))).json()
        [step] = detail["ladder"]
        assert step["reason"] == "橙色预警叫应, 呼叫技术责任人"
        [call_row] = [n for n in detail["notifications"] if n["id"] in step["notifications"]]
        assert (call_row["channel"], call_row["status"]) == ("voice", "queued")
        assert detail["confirmations"] == []
        assert detail["wake_up_seconds"] is None

    with_alerts(pg_url, body)
    args = ["--config", str(config), "alerts", "confirm", "1", "--role", "patrol"]
    assert main([*args, "--note", "电话已联系", "--by", "王值班"]) == 0
    assert "patrol" in capsys.readouterr().out
    assert main(["--config", str(config), "alerts", "show", "1"]) == 0
    shown = capsys.readouterr().out
    assert "orange:call:technical:1: 橙色预警叫应, 呼叫技术责任人" in shown
    assert "voice #" in shown
    assert "via operator (recorded by 王值班(电话已联系))" in shown
    assert "wake-up: " in shown
    assert "nobody has confirmed" not in shown
    assert main([*args[:5], "--role", "county", "--phone", "+8613000000000"]) == 1


def test_unconfirmed_alerts_are_listed_and_counted_until_someone_answers(pg_url: str) -> None:
    async def unconfirmed(client: httpx.AsyncClient) -> tuple[list[int], int, str]:
        listed = await client.get(
            "/api/v1/alerts", params={"unconfirmed": "true"}, headers=auth(VIEWER)
        )
        summary = await client.get("/api/v1/summary", headers=auth(VIEWER))
        metrics = (await client.get("/metrics")).text
        [gauge] = [line for line in metrics.splitlines() if line.startswith("hydro_alerts_unc")]
        return (
            [a["id"] for a in listed.json()["items"]],
            summary.json()["unconfirmed_alerts"],
            gauge,
        )

    async def body(client: httpx.AsyncClient, pool: AsyncConnectionPool) -> None:
        assert await unconfirmed(client) == ([], 0, "hydro_alerts_unconfirmed 0.0")
        registry, rules = app.load_stations(_config(pg_url)), app.load_alert_rules(_config(pg_url))
        await LadderRunner(registry, rules, pool, lambda _: (), clock=lambda: NOW).run()
        assert await unconfirmed(client) == ([1], 1, "hydro_alerts_unconfirmed 1.0")
        # the ladder's call to the technical person is counted apart from the SMS
        summary = (await client.get("/api/v1/summary", headers=auth(VIEWER))).json()
        assert summary["calls_by_status"] == {"queued": 1}
        assert summary["sms_by_status"] == {"queued": 6}  # three persons of each station
        assert 'hydro_calls{status="queued"} 1.0' in (await client.get("/metrics")).text
        [code, *_] = [m.group(1) for t in sms_of(pg_url, HEFENG) if (m := LINK.search(t))]
        assert (await client.post(f"/c/{code}")).status_code == 200
        assert await unconfirmed(client) == ([], 0, "hydro_alerts_unconfirmed 0.0")

    with_alerts(pg_url, body)


def test_one_person_in_two_roles_gets_one_link_in_both_sms(pg_url: str) -> None:
    """A small reservoir's administrative and technical person are often one official with one
    phone: both SMS of an alert carry that phone's one code, and the messages keep their order."""
    migrated(pg_url)
    official = "+8613800000001"
    persons = [
        Recipient(Role.ADMINISTRATIVE, "王主任", official),
        Recipient(Role.TECHNICAL, "王主任", official),
        Recipient(Role.PATROL, "李四", "+8613800000002"),
    ]
    messages = tuple(Notification(p, f"{p.role.value}: 水位超设计洪水位") for p in persons)
    change = AlertChange(
        MAICHONG,
        "reservoir_level",
        "reservoir_design_flood",
        "red",
        AlertChangeKind.OPEN,
        3,
        NOW,
        772.0,
        late=False,
        messages=messages,
    )

    async def main() -> list[RecordedChange]:
        async with await psycopg.AsyncConnection.connect(pg_url) as conn:
            return await record_changes(
                conn,
                [change],
                now=NOW,
                links=Links(PUBLIC_URL, dt.timedelta(hours=24)),
                linked_rules=frozenset({"reservoir_design_flood"}),
            )

    [recorded] = asyncio.run(main())
    bodies = fetch(pg_url, "SELECT id, role, body FROM outbox ORDER BY id")
    assert [int(i) for i, _, _ in bodies] == list(recorded.outbox_ids)
    assert [r for _, r, _ in bodies] == ["administrative", "technical", "patrol"]
    codes = [m.group(1) for _, _, body in bodies if (m := LINK.search(str(body)))]
    assert len(codes) == 3
    assert codes[0] == codes[1] != codes[2]
    assert fetch(pg_url, "SELECT count(*) FROM confirmation_links") == [(2,)]
