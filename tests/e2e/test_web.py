"""The web page in a real browser: Debian's Chromium driven by Playwright, against `hydro run`
with real Mosquitto and PostgreSQL. A screenshot is kept in ``test-artifacts/``."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hydro.local import LocalMosquitto
from tests.support import (
    HEFENG,
    HEFENG_GATEWAY,
    REPO,
    fetch,
    publish_levels,
    start_hydro,
    wait_until,
    write_config,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

ARTIFACTS = Path(os.environ.get("HYDRO_TEST_ARTIFACTS", REPO / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OPERATOR = "operator-token-0123456789"


pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="needs Debian's chromium (apt-get install chromium; .ci/run installs it)",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def hydro_url(
    tmp_path: Path, pg_url: str, local_mosquitto: LocalMosquitto, mqtt_topic_prefix: str
) -> Iterator[str]:
    port = _free_port()
    config = write_config(
        tmp_path / "config.yaml",
        pg_url,
        local_mosquitto.port,
        mqtt_topic_prefix,
        api={"port": port, "max_csv_rows": 1},  # an export of three alerts takes three answers
        sms={"confirm_above": 10},  # a prefecture's persons need the second confirmation
        duty={"roster": str(REPO / "duty" / "roster.csv")},  # weekly: someone is always on
        voice={"console_answers": "none"},  # every call rings out: alerts stay 未叫应
    )
    env = {"HYDRO_API__TOKENS": f"li:operator:{OPERATOR}"}
    process = start_hydro("run", config, tmp_path / "hydro.log", env)
    yield f"http://127.0.0.1:{port}"
    process.send_signal(signal.SIGTERM)
    process.wait(30)


MAICHONG, MAICHONG_GATEWAY = "67901001", "gw-7-001"  # 麦冲水库, with a stage-storage curve


def _publish(
    broker: LocalMosquitto,
    topic_prefix: str,
    minutes_ago: int,
    level: float,
    station: tuple[str, str] = (HEFENG, HEFENG_GATEWAY),
) -> None:
    # Playwright's sync API keeps an event loop running in this thread: publish from another.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        code, gateway = station
        pool.submit(
            publish_levels,
            broker,
            topic_prefix,
            (minutes_ago, level),
            station=code,
            gateway=gateway,
            client="web-gw",
        ).result(30)


def _operator_page(playwright: Playwright, hydro_url: str) -> tuple[Browser, Page]:
    """Chromium with the page open, signed in as the operator."""
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{hydro_url}/#token={OPERATOR}")
    return browser, page


def test_map_shows_a_crossing_live_and_an_operator_acknowledges_it(
    hydro_url: str, local_mosquitto: LocalMosquitto, mqtt_topic_prefix: str, pg_url: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    _publish(local_mosquitto, mqtt_topic_prefix, 10, 908.30)  # a 0.4 m rise: no rapid-rise alert
    # below its normal level 771.5 (no alert): 4,407 万m³ on stations/storage_curves.csv
    _publish(local_mosquitto, mqtt_topic_prefix, 10, 771.0, (MAICHONG, MAICHONG_GATEWAY))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        refused: list[str] = []  # what the Content-Security-Policy blocked, on every page
        # Playwright needs a Python function here, not a builtin's bound method.
        page.expose_function("cspRefused", lambda text: refused.append(text))  # noqa: PLW0108
        page.add_init_script(
            "document.addEventListener('securitypolicyviolation', (e) =>"
            " window.cspRefused(`${e.violatedDirective} ${e.blockedURI} ${e.sample}`))"
        )
        answer = page.goto(f"{hydro_url}/#token={OPERATOR}")
        assert answer is not None
        assert "script-src 'self'" in answer.headers["content-security-policy"]
        stations = page.locator("#map circle.station")
        expect(stations).to_have_count(90)
        hefeng = page.locator(f'#map circle[data-code="{HEFENG}"]')
        expect(hefeng).to_have_attribute("data-status", "normal")
        expect(page.locator("#who")).to_have_text("li (operator)")

        _publish(local_mosquitto, mqtt_topic_prefix, 5, 908.70)  # above 908.50
        expect(hefeng).to_have_attribute("data-status", "yellow", timeout=30_000)  # live refresh
        row = page.locator("#active tr[data-alert]")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("禾丰水文站")

        hefeng.click()
        expect(page.locator("#panel")).to_contain_text("开阳县")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-map.png"), full_page=True)
        expect(page.locator("#panel-storage")).to_have_count(0)  # a river has no storage
        page.locator(f'#map circle[data-code="{MAICHONG}"]').click()
        expect(page.locator("#panel-storage")).to_contain_text(
            "4407 万m³ · 正常库容的97.5% · 正常库容 4521 万m³ · 中型"
        )

        row.click()
        dialog = page.locator("#alert-dialog")
        expect(dialog).to_contain_text("超警戒水位")
        expect(dialog.locator(".sms-status")).to_have_count(3)  # the three responsible persons
        page.locator("#ack").click()
        expect(page.locator("#acked-by")).to_have_text("li")
        page.screenshot(path=str(ARTIFACTS / "web-alert.png"))
        page.keyboard.press("Escape")

        page.click("#nav-sms")  # the alert's text to its persons again, from the duty desk
        form = page.locator("#sms-form")
        form.locator("input[name=value]").fill(HEFENG)
        form.locator("input[name=from_alert]").fill(HEFENG)
        form.locator("input[name=reason]").fill("电话未接通, 再次提醒")
        page.click("#sms-preview")
        expect(page.locator("#sms-count")).to_have_text("3")
        page.click("#sms-send")
        expect(page.locator("#sms-result")).to_contain_text("已提交发送 3 条短信")
        page.click("header nav a[href='#map']")
        row.click()
        expect(dialog.locator(".sms-status")).to_have_count(6)
        expect(dialog).to_contain_text("人工短信, 发送人 li: 电话未接通, 再次提醒")
        page.keyboard.press("Escape")

        page.locator("#lang").click()
        expect(page.locator("h1")).to_have_text("hydro flood map")

        page.goto(f"{hydro_url}/#report")
        report = page.frame_locator("#report-frame")
        expect(report.locator("body")).to_contain_text("禾丰水文站")

        page.goto(f"{hydro_url}/#station/{HEFENG}")
        expect(page.locator("#chart canvas")).to_have_count(1)
        expect(page.locator("#chart")).to_contain_text("Warning")  # the level line's legend
        page.screenshot(path=str(ARTIFACTS / "web-station.png"))
        browser.close()
    assert refused == []
    assert fetch(pg_url, "SELECT acknowledged_by FROM alerts") == [("li",)]


def test_a_wrong_token_is_refused_and_the_sign_in_form_shown(hydro_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()
        page.goto(f"{hydro_url}/#token=not-a-real-token-000000")
        expect(page.locator("#login")).to_be_visible()
        expect(page.locator("#map circle")).to_have_count(0)
        page.fill("#token", OPERATOR)
        page.click("#login-form button")
        expect(page.locator("#map circle.station")).to_have_count(90)
        browser.close()


def test_the_csv_export_gathers_every_alert_across_responses(hydro_url: str, pg_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    ids = fetch(
        pg_url,
        "INSERT INTO alerts (station, family, rule_id, rank, severity, state, opened_at,"
        f" cleared_at, peak_value) SELECT '{HEFENG}', 'river_level', 'river_warning', 2,"
        " 'yellow', 'cleared', now() - h * interval '1 hour',"
        " now() - h * interval '1 hour' + interval '30 minutes', 909.0"
        " FROM generate_series(1, 3) h RETURNING id",
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()
        page.goto(f"{hydro_url}/#token={OPERATOR}")
        expect(page.locator("#map circle.station")).to_have_count(90)
        page.goto(f"{hydro_url}/#alerts")
        expect(page.locator("#history tr[data-alert]")).to_have_count(3)
        with page.expect_download() as download:
            page.click("#csv")
        exported = Path(download.value.path()).read_bytes().decode()
        browser.close()
    assert exported.startswith("\ufeffid,")  # the BOM Excel needs, once
    rows = exported.lstrip("\ufeff").splitlines()
    assert rows[0].startswith("id,")
    assert [row.split(",")[0] for row in rows[1:]] == [str(i) for (i,) in ids]  # newest first


def test_an_operator_previews_a_manual_sms_confirms_and_sends_it(
    hydro_url: str, pg_url: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{hydro_url}/#token={OPERATOR}")
        expect(page.locator("#map circle.station")).to_have_count(90)
        page.click("#nav-sms")
        form = page.locator("#sms-form")
        form.locator("select[name=kind]").select_option("county")
        form.locator("input[name=value]").fill("无此县")
        form.locator("textarea[name=text]").fill("{name}您好: {station}今夜有强降雨, 请加强巡查")
        page.click("#sms-preview")
        expect(page.locator("#sms-error")).to_have_text(
            "unknown county '无此县': no station of the registry in it"
        )

        form.locator("select[name=kind]").select_option("prefecture")
        form.locator("input[name=value]").fill("贵阳市")
        page.click("#sms-preview")
        count = page.locator("#sms-count")
        expect(count).not_to_have_text("")
        recipients = int(count.inner_text())
        assert recipients > 10
        expect(page.locator("#sms-messages tbody tr")).to_have_count(recipients)
        expect(page.locator("#sms-messages")).to_contain_text(
            "【防汛】罗建国您好: 禾丰水文站今夜有强降雨"
        )
        page.click("#sms-send")  # neither confirmed nor a reason given yet
        expect(page.locator("#sms-error")).to_have_text("请先勾选确认")
        page.check("#sms-confirm")
        page.click("#sms-send")
        expect(page.locator("#sms-error")).to_contain_text("say why this message is sent")
        form.locator("input[name=reason]").fill("气象台暴雨预报")
        page.click("#sms-send")
        expect(page.locator("#sms-result")).to_contain_text(f"已提交发送 {recipients} 条短信")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-sms.png"), full_page=True)
        browser.close()
    assert fetch(
        pg_url,
        "SELECT count(*), min(written_by), min(reason) FROM outbox"
        " WHERE manual_send_id IS NOT NULL",
    ) == [(recipients, "li", "气象台暴雨预报")]


def test_the_duty_hand_over_shows_and_an_operator_enters_a_reading_by_hand(
    hydro_url: str, pg_url: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser, page = _operator_page(playwright, hydro_url)
        expect(page.locator("#duty-now .duty-person")).to_have_count(2)  # officer and leader
        expect(page.locator('#duty-now [data-role="duty"]')).to_contain_text("示例值班")
        expect(page.locator('#duty-now [data-role="leader"]')).to_contain_text("示例领导")
        expect(page.locator("#duty-next")).to_contain_text("示例")

        page.goto(f"{hydro_url}/#station/{HEFENG}")
        form = page.locator("#reading-form")
        expect(form).to_be_visible()
        now = page.evaluate(
            "(() => { const d = new Date(Date.now() - 60e3"
            " - new Date().getTimezoneOffset() * 60e3);"
            " return d.toISOString().slice(0, 16); })()"
        )
        form.locator("input[name=time]").fill(now)
        form.locator("input[name=water_level]").fill("99999")
        form.locator("input[name=note]").fill("巡查员电话报数")
        form.locator("button[type=submit]").click()
        expect(page.locator("#reading-result")).to_contain_text("plausible maximum")
        form.locator("input[name=water_level]").fill("908.2")
        form.locator("button[type=submit]").click()
        expect(page.locator("#reading-result")).to_contain_text("已保存")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-manual-reading.png"))
        browser.close()
    assert fetch(pg_url, "SELECT station, water_level, entered_by FROM manual_readings") == [
        (HEFENG, 908.2, "li")
    ]


def test_an_unconfirmed_alert_shows_its_ladder_and_an_operator_confirms_for_a_person(
    hydro_url: str, local_mosquitto: LocalMosquitto, mqtt_topic_prefix: str, pg_url: str
) -> None:
    """叫应 on the page: an orange alert calls the technical person, nobody answers, the alert
    is listed as 未叫应; its dialog shows the call and its outcome, and an operator who reached
    the person by phone records it with the person's button."""
    from playwright.sync_api import expect, sync_playwright

    _publish(local_mosquitto, mqtt_topic_prefix, 5, 910.30)  # above 保证水位 910.00
    asyncio.run(
        wait_until(
            lambda: bool(fetch(pg_url, "SELECT 1 FROM outbox WHERE call_status = 'no-answer'")),
            seconds=60,
            what="the technical person's call to ring out",
        )
    )
    with sync_playwright() as playwright:
        browser, page = _operator_page(playwright, hydro_url)
        waiting = page.locator("#unconfirmed tr[data-alert]")
        expect(waiting).to_have_count(1, timeout=30_000)  # the map refreshes every 10 s
        expect(waiting).to_contain_text("禾丰水文站")
        expect(page.locator("#unconfirmed-count")).to_have_text("1")
        expect(page.locator("#counts")).to_contain_text("未叫应")

        waiting.click()
        dialog = page.locator("#alert-dialog")
        expect(dialog).to_contain_text("超保证水位")
        ladder = dialog.locator("#ladder")
        expect(ladder).to_contain_text("橙色预警叫应, 呼叫技术责任人")
        expect(ladder).to_contain_text("技术责任人 陈海燕")
        expect(ladder).to_contain_text("电话")
        expect(page.locator("#wake-up")).to_have_text("尚无人确认")
        expect(ladder.locator(".call-outcome")).to_have_text(["no-answer"])

        page.locator(".confirm-for", has_text="陈海燕").click()
        confirmation = dialog.locator("#confirmations .confirmation")
        expect(confirmation).to_have_count(1)
        expect(confirmation).to_contain_text("技术责任人 陈海燕")
        expect(confirmation).to_contain_text("值班员代确认")
        expect(confirmation).to_contain_text("li(电话已联系)")
        expect(page.locator("#wake-up")).not_to_have_text("尚无人确认")
        expect(dialog.locator(".confirm-for")).to_have_count(0)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-ladder.png"))
        page.keyboard.press("Escape")
        expect(waiting).to_have_count(0)
        expect(page.locator("#unconfirmed-count")).to_have_text("0")
        browser.close()
    assert fetch(pg_url, "SELECT role, answer, recorded_by, note FROM confirmations") == [
        ("technical", "operator", "li", "电话已联系")
    ]
