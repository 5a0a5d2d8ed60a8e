"""The web page in a real browser: Debian's Chromium driven by Playwright, against `hydro run`
with real Mosquitto and PostgreSQL. A screenshot is kept in ``test-artifacts/``."""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from hydro.local import LocalMosquitto
from tests.support import (
    HEFENG,
    REPO,
    fetch,
    publish_levels,
    start_hydro,
    write_config,
)

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
    )
    env = {"HYDRO_API__TOKENS": f"li:operator:{OPERATOR}"}
    process = start_hydro("run", config, tmp_path / "hydro.log", env)
    yield f"http://127.0.0.1:{port}"
    process.send_signal(signal.SIGTERM)
    process.wait(30)


def _publish(broker: LocalMosquitto, topic_prefix: str, minutes_ago: int, level: float) -> None:
    # Playwright's sync API keeps an event loop running in this thread: publish from another.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        levels = (minutes_ago, level)
        pool.submit(publish_levels, broker, topic_prefix, levels, client="web-gw").result(30)


def test_map_shows_a_crossing_live_and_an_operator_acknowledges_it(
    hydro_url: str, local_mosquitto: LocalMosquitto, mqtt_topic_prefix: str, pg_url: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    _publish(local_mosquitto, mqtt_topic_prefix, 10, 908.30)  # a 0.4 m rise: no rapid-rise alert
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

        row.click()
        dialog = page.locator("#alert-dialog")
        expect(dialog).to_contain_text("超警戒水位")
        expect(dialog.locator(".sms-status")).to_have_count(3)  # the three responsible persons
        page.locator("#ack").click()
        expect(page.locator("#acked-by")).to_have_text("li")
        page.screenshot(path=str(ARTIFACTS / "web-alert.png"))
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
