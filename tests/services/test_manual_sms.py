"""Manual SMS against a real PostgreSQL, through the API as the web page and scripts use it:
preview, a second confirmation above sms.confirm_above, one transaction per send."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from hydro.cli import main
from hydro.config import Config
from hydro.desk.manual import ManualSms, SmsRequest
from hydro.desk.recipients import Audience, AudienceKind, Directory
from hydro.errors import StorageError
from hydro.models import Recipient, Role
from hydro.rules import RuleSet
from hydro.store.alerts import alert_detail
from hydro.store.outbox import list_outbox
from tests.support import HEFENG, REPO, api_client, fetch, migrated, open_alert, write_config

VIEWER = "viewer-token-0123456789"
OPERATOR = "operator-token-0123456789"
DUTY_PHONE = "+8613900000000"

Client = httpx.AsyncClient
_JSON = {"Content-Type": "application/json"}


def _config(pg_url: str) -> Config:
    return Config.model_validate(
        {
            "database": {"url": pg_url, "timescaledb": "off"},
            "registry": {"stations": str(REPO / "stations")},
            "alerting": {"rules": str(REPO / "alert_rules")},
            "sms": {
                "duty_officers": [{"name": "值班员", "phone": DUTY_PHONE}],
                "confirm_above": 10,
                "max_length": 200,
                "groups": {"防指": [{"name": "防指办", "phone": "+8613900000001"}]},
            },
            "api": {"port": 0, "tokens": f"wang:viewer:{VIEWER},li:operator:{OPERATOR}"},
        }
    )


def _run(pg_url: str, test: Callable[[Client, Any], Awaitable[None]]) -> None:
    """Runs ``test`` with an API client (the operator's token) and the wired context."""
    config = _config(pg_url)

    async def main() -> None:
        headers = {"Authorization": f"Bearer {OPERATOR}"}
        async with api_client(config, headers) as (client, context):
            await test(client, context)

    asyncio.run(main())


def _open_alert(pg_url: str, severity: str = "orange") -> int:
    """An open alert at 禾丰水文站 with the SMS it sent its administrative person."""
    migrated(pg_url)
    return open_alert(
        pg_url,
        HEFENG,
        family="river_level",
        rule_id="river_guaranteed",
        rank=2,
        severity=severity,
        sms=("administrative", "罗建国", "+8613908510201", "禾丰水文站超保证水位"),
    )


def _queued(pg_url: str) -> int:
    return int(fetch(pg_url, "SELECT count(*) FROM outbox WHERE manual_send_id IS NOT NULL")[0][0])


def test_a_prefecture_send_needs_the_previews_confirmation_and_queues_as_one(
    pg_url: str,
) -> None:
    body = {"prefecture": "黔东南州", "text": "{name}您好, {station}今夜有强降雨, 请加强巡查"}

    async def test(client: Client, _: object) -> None:
        preview = (await client.post("/api/v1/sms/preview", json=body)).json()
        assert preview["needs_confirmation"] is True
        phones = [m["phone"] for m in preview["messages"]]
        assert len(phones) == len(set(phones)) == preview["recipients"] > 10
        first = preview["messages"][0]
        assert first["text"].startswith("【防汛】")
        assert first["person"] in first["text"]
        assert (first["encoding"], first["segments"]) == ("UCS-2", 1)
        assert first["phone"].startswith("*")  # an operator sees masked phones
        send = {**body, "reason": "气象台暴雨预报"}
        refused = await client.post("/api/v1/sms/send", json=send)
        assert refused.status_code == 409
        assert refused.json()["confirm"] == preview["confirm"]
        assert _queued(pg_url) == 0
        stale = await client.post("/api/v1/sms/send", json={**send, "confirm": "3-abc"})
        assert stale.status_code == 409
        sent = await client.post("/api/v1/sms/send", json={**send, "confirm": preview["confirm"]})
        assert sent.status_code == 201, sent.text
        assert sent.json()["recipients"] == preview["recipients"]

    _run(pg_url, test)
    (send_id, by, reason, recipients, audience), *more = fetch(
        pg_url, "SELECT id, written_by, reason, recipients, audience FROM manual_sends"
    )
    assert (by, reason, audience, more) == ("li", "气象台暴雨预报", "prefecture 黔东南州", [])
    rows = fetch(
        pg_url,
        "SELECT manual_send_id, written_by, reason, status, alert_id FROM outbox ORDER BY id",
    )
    assert rows == [(send_id, "li", "气象台暴雨预报", "queued", None)] * recipients


def test_a_send_from_an_alert_is_in_its_history_and_the_outbox_listing(pg_url: str) -> None:
    alert_id = _open_alert(pg_url)

    async def test(client: Client, context: Any) -> None:
        body = {"in_alert": True, "severity": "orange", "from_alert": HEFENG, "reason": "跟进"}
        preview = (await client.post("/api/v1/sms/preview", json=body)).json()
        assert preview["alert_id"] == alert_id
        assert preview["recipients"] == 3
        assert {m["text"] for m in preview["messages"]} == {"【防汛】禾丰水文站超保证水位"}
        assert (await client.post("/api/v1/sms/send", json=body)).status_code == 201
        _, _, messages = await alert_detail(context.pool, alert_id)
        manual = [m for m in messages if m.manual_send_id is not None]
        assert [(m.written_by, m.reason) for m in manual] == [("li", "跟进")] * 3
        listed = await list_outbox(context.pool, status=None, limit=10)
        assert listed[0].written_by == "li"
        detail = (await client.get(f"/api/v1/alerts/{alert_id}")).json()
        assert sum(n["reason"] == "跟进" for n in detail["notifications"]) == 3

    _run(pg_url, test)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"station": HEFENG, "text": "  "}, "the text is empty"),
        ({"station": HEFENG}, "the text is empty"),
        ({"station": HEFENG, "text": "水" * 200}, "too long: 204 characters"),
        ({"station": "99999999", "text": "x"}, "unknown station '99999999'"),
        ({"county": "无此县", "text": "x"}, "unknown county '无此县'"),
        ({"prefecture": "无此州", "text": "x"}, "unknown prefecture '无此州'"),
        ({"river": "无此河", "text": "x"}, "unknown river '无此河'"),
        ({"group": "无此组", "text": "x"}, "unknown group '无此组'"),
        ({"in_alert": True, "text": "x"}, "nobody to send to: in_alert has no recipients"),
        ({"station": HEFENG, "duty": True, "text": "x"}, "pick exactly one kind"),
        ({"station": HEFENG, "from_rule": "no_such_rule", "rule_station": HEFENG}, "unknown rule"),
        ({"station": HEFENG, "from_rule": "reservoir_normal", "rule_station": HEFENG}, "does not"),
        ({"station": HEFENG, "from_alert": HEFENG}, "has sent no alert SMS yet"),
        ({"station": HEFENG, "text": "x", "reason": " "}, "say why"),
        ({"station": HEFENG, "text": "水位\u0000"}, "the text contains a NUL character"),
        ({"station": HEFENG, "text": "水位\ud800"}, "unable to parse raw data as a unicode"),
        ({"station": HEFENG, "text": "x", "reason": "\u0000"}, "the reason contains a NUL"),
    ],
)
def test_bad_input_is_refused_by_name_and_nothing_is_queued(
    pg_url: str, body: dict[str, Any], named: str
) -> None:
    async def test(client: Client, _: object) -> None:
        for path in ("/api/v1/sms/preview", "/api/v1/sms/send"):
            if path.endswith("preview") and "reason" in body:
                continue  # a preview needs no reason
            payload = json.dumps({"reason": "演练", **body})  # \ud800 stays escaped
            answer = await client.post(path, content=payload, headers=_JSON)
            assert answer.status_code == 422, answer.text
            assert named in str(answer.json()["detail"])

    _run(pg_url, test)
    assert fetch(pg_url, "SELECT count(*) FROM outbox") == [(0,)]
    assert fetch(pg_url, "SELECT count(*) FROM manual_sends") == [(0,)]


def test_a_viewer_can_neither_preview_nor_send(pg_url: str) -> None:
    async def test(client: Client, _: object) -> None:
        viewer = {"Authorization": f"Bearer {VIEWER}"}
        for path in ("/api/v1/sms/preview", "/api/v1/sms/send"):
            body = {"duty": True, "text": "x", "reason": "y"}
            answer = await client.post(path, json=body, headers=viewer)
            assert answer.status_code == 403

    _run(pg_url, test)
    assert _queued(pg_url) == 0


def test_duty_groups_and_rule_templates_reach_their_people(pg_url: str) -> None:
    async def test(client: Client, _: object) -> None:
        duty = (
            await client.post("/api/v1/sms/preview", json={"duty": True, "text": "交班"})
        ).json()
        assert [(m["role"], m["text"]) for m in duty["messages"]] == [("duty", "【防汛】交班")]
        group = {"group": "防指", "text": "会商"}
        assert (await client.post("/api/v1/sms/preview", json=group)).json()["recipients"] == 1
        rule = {"station": HEFENG, "from_rule": "river_warning"}  # filled for that station
        text = (await client.post("/api/v1/sms/preview", json=rule)).json()["messages"][0]["text"]
        assert "开阳县禾丰水文站" in text
        assert "水位达到908.50米,超警戒水位0.00米" in text

    _run(pg_url, test)


def test_a_send_failing_half_way_queues_nothing(pg_url: str) -> None:
    """PostgreSQL refuses the second member's name (a NUL): the first is not left queued."""

    async def test(_: Client, context: Any) -> None:
        members = [
            Recipient(Role.CONTACT, "甲", "+8613900000011"),
            Recipient(Role.CONTACT, "乙\x00", "+8613900000012"),
        ]
        directory = Directory(context.registry, {"坏组": members})
        desk = ManualSms(_config(pg_url).sms, directory, RuleSet(), context.pool, list, frozenset())
        request = SmsRequest(Audience(AudienceKind.GROUP, "坏组"), "会商")
        with pytest.raises(StorageError):
            await desk.send(request, written_by="li", reason="测试", confirm=None)

    _run(pg_url, test)
    assert fetch(pg_url, "SELECT count(*) FROM outbox") == [(0,)]
    assert fetch(pg_url, "SELECT count(*) FROM manual_sends") == [(0,)]


def test_the_command_previews_refuses_and_sends(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        tmp_path / "config.yaml", pg_url, 1883, "t", sms={"confirm_above": 5, "signature": ""}
    )
    _open_alert(pg_url)  # migrates too
    base = ["--config", str(config), "sms", "send", "--prefecture", "贵阳市"]
    text = ["--text", "{name}: {station}请复核"]
    assert main([*base, *text, "--dry-run"]) == 0
    preview = capsys.readouterr().out
    recipients = int(preview.split()[0])
    assert recipients > 5
    assert "罗建国: 禾丰水文站请复核" in preview
    assert main([*base, *text]) == 1
    assert "error: say why this message is sent: --reason" in capsys.readouterr().err
    assert main([*base, *text, "--reason", "演练"]) == 1  # no terminal to confirm at
    assert "need --yes" in capsys.readouterr().err
    assert _queued(pg_url) == 0
    assert main([*base, *text, "--reason", "演练", "--yes", "--by", "张值班"]) == 0
    assert f"{recipients} SMS" in capsys.readouterr().out
    station = ["--config", str(config), "sms", "send", "--station", HEFENG]
    assert main([*station, "--from-alert", HEFENG, "--reason", "跟进", "--by", "张值班"]) == 0
    assert "attached to alert" in capsys.readouterr().out
    assert main(["--config", str(config), "outbox", "list", "--limit", "1"]) == 0
    assert "by 张值班 (跟进): 禾丰水文站超保证水位" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="2"):  # argparse: one kind of recipients
        main([*station, "--county", "开阳县", "--text", "x", "--reason", "y"])
    capsys.readouterr()
    assert (
        main(
            [
                "--config",
                str(config),
                "sms",
                "send",
                "--county",
                "无此县",
                "--text",
                "x",
                "--dry-run",
            ]
        )
        == 1
    )
    assert "error: unknown county '无此县'" in capsys.readouterr().err
    assert _queued(pg_url) == recipients + 3
