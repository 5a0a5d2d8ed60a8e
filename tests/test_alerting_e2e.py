"""From gateway to SMS: ``hydro run`` with real Mosquitto, PostgreSQL and the twilio client."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from hydro.cli import main
from hydro.local import LocalMosquitto, LocalPostgres
from tests.support import count_rows, publish_json, publisher, reading, start_hydro, write_config
from tests.twilio_server import FakeTwilio

REPO = Path(__file__).resolve().parent.parent
HEFENG = "61901002"  # 禾丰水文站 (开阳县, 贵阳市): warning 908.50, guaranteed 910.00
GATEWAY = "gw-1-001"
NOW = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)


def at(minutes_ago: int) -> str:
    return (NOW - dt.timedelta(minutes=minutes_ago)).isoformat()


def local_time(minutes_ago: int) -> str:
    moment = (NOW - dt.timedelta(minutes=minutes_ago)).astimezone(
        dt.timezone(dt.timedelta(hours=8))
    )
    return f"{moment.month}月{moment.day}日{moment.hour}时{moment.minute}分"


@pytest.fixture
def hydro_run(
    tmp_path: Path, pg_url: str, local_mosquitto: LocalMosquitto, mqtt_topic_prefix: str
) -> Callable[..., subprocess.Popen[bytes]]:
    # The threshold lifecycle without the rate-of-rise rule, which a 1.7 m climb also fires.
    rules = yaml.safe_load((REPO / "alert_rules" / "default.yaml").read_text(encoding="utf-8"))
    rules["rules"] = [rule for rule in rules["rules"] if rule["type"] != "rate_of_rise"]
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.yaml").write_text(
        yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8"
    )
    log = tmp_path / "hydro.log"
    started: list[subprocess.Popen[bytes]] = []

    def start(fake: FakeTwilio, database_url: str | None = None) -> subprocess.Popen[bytes]:
        config = write_config(
            tmp_path / "config.yaml",
            database_url or pg_url,
            local_mosquitto.port,
            mqtt_topic_prefix,
            alerting={"rules": str(tmp_path / "rules")},
            sms={"provider": "twilio", "retry_first": "100ms"},
        )
        process = start_hydro("run", config, log, fake.environment())
        started.append(process)
        return process

    yield start  # type: ignore[misc]
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(30)


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_warning_escalation_restart_and_clear_send_each_sms_once(
    hydro_run: Callable[..., subprocess.Popen[bytes]],
    local_mosquitto: LocalMosquitto,
    mqtt_topic_prefix: str,
    pg_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = f"{mqtt_topic_prefix}/{GATEWAY}/readings"

    def publish(*levels: tuple[int, float]) -> None:
        async def go() -> None:
            async with publisher(local_mosquitto.port, f"gw-{mqtt_topic_prefix}") as gw:
                await publish_json(
                    gw,
                    topic,
                    {"readings": [reading(HEFENG, at(m), water_level=v) for m, v in levels]},
                )

        asyncio.run(go())

    with FakeTwilio() as fake:
        process = hydro_run(fake)
        publish((14, 906.63), (13, 908.62))  # crosses 警戒 (recent: no silence)
        wait_for(lambda: len(fake.received) == 3, "three warning SMS")
        assert sorted(m.to for m in fake.received) == [
            "+8613885110202",
            "+8613908510201",
            "+8618785110203",
        ]
        assert {m.body for m in fake.received} == {
            f"贵阳市开阳县禾丰水文站{local_time(13)}水位达到908.62米,超警戒水位0.12米,"
            "请及时复核并提醒相关责任人戒备,注意防范"
        }
        publish((12, 908.9), (11, 908.48), (10, 908.52), (9, 908.47))  # above, then flicker
        publish((8, 910.3))  # 保证
        wait_for(lambda: len(fake.received) == 6, "three escalation SMS")
        assert "超保证水位0.30米" in fake.received[-1].body

        process.send_signal(signal.SIGKILL)  # restart mid-alert
        process.wait()
        process = hydro_run(fake)
        publish((7, 910.1))  # still above: nothing new
        publish((6, 908.4), (5, 908.3))  # two readings below 908.50 - 0.05: clear
        wait_for(lambda: len(fake.received) == 9, "three clear SMS")
        time.sleep(2)  # two more evaluation ticks: nothing else may go out
        assert len(fake.received) == 9
        assert "预警解除" in fake.received[-1].body
    assert count_rows(pg_url, "SELECT count(*) FROM alerts") == 1
    assert count_rows(pg_url, "SELECT count(*) FROM outbox WHERE status = 'sent'") == 9

    config = str(process.args[4])  # type: ignore[index]
    for name, value in fake.environment().items():
        monkeypatch.setenv(name, value)
    assert main(["--config", config, "alerts", "show", "1"]) == 0
    shown = capsys.readouterr().out
    assert [line.split()[2] for line in shown.splitlines()[1:4]] == ["open", "escalate", "clear"]
    assert shown.count("SMS #") == 9


def test_a_back_filled_report_opens_at_its_peak_and_a_silent_gauge_keeps_the_alert(
    hydro_run: Callable[..., subprocess.Popen[bytes]],
    local_mosquitto: LocalMosquitto,
    mqtt_topic_prefix: str,
    pg_url: str,
) -> None:
    """An hourly BeiDou report arrives late: the level crossed 正常蓄水位 inside it, and the
    gauge has said nothing since (it may have been destroyed at the peak)."""
    maichong, gateway = "67901001", "gw-7-001"  # 麦冲水库, normal level 771.50
    levels = [(45, 771.30), (40, 771.42), (35, 771.56), (30, 771.58), (25, 771.57)]

    async def publish() -> None:
        async with publisher(local_mosquitto.port, f"bd-{mqtt_topic_prefix}") as gw:
            await publish_json(
                gw,
                f"{mqtt_topic_prefix}/{gateway}/readings",
                {"readings": [reading(maichong, at(m), water_level=v) for m, v in levels]},
            )

    with FakeTwilio() as fake:
        hydro_run(fake)
        asyncio.run(publish())
        wait_for(lambda: len(fake.received) == 5, "three alert SMS and two silence notices")
        bodies = [m.body for m in fake.received]
    assert sum(f"{local_time(35)}水位达到771.56米,超正常水位0.06米" in b for b in bodies) == 3
    assert sum("预警期间" in b and "预警继续有效" in b for b in bodies) == 2
    assert (
        count_rows(
            pg_url,
            "SELECT count(*) FROM alerts WHERE family = 'reservoir_level' AND state = 'open'"
            f" AND opened_at = '{at(35)}'",
        )
        == 1
    )


def test_a_crossing_during_a_database_outage_is_announced_when_it_returns(
    hydro_run: Callable[..., subprocess.Popen[bytes]],
    postgres_factory: Callable[[], LocalPostgres],
    local_mosquitto: LocalMosquitto,
    mqtt_topic_prefix: str,
) -> None:
    cluster = postgres_factory()
    database = cluster.create_database("hydro")
    topic = f"{mqtt_topic_prefix}/{GATEWAY}/readings"

    def publish(minutes: int, level: float) -> None:
        async def go() -> None:
            async with publisher(local_mosquitto.port, f"gw-{mqtt_topic_prefix}") as gw:
                await publish_json(gw, topic, reading(HEFENG, at(minutes), water_level=level))

        asyncio.run(go())

    with FakeTwilio() as fake:
        hydro_run(fake, database)
        publish(10, 908.7)
        wait_for(lambda: len(fake.received) == 3, "three warning SMS")
        cluster.stop()
        publish(5, 910.4)  # 保证, while nothing can be stored
        time.sleep(3)
        assert len(fake.received) == 3
        cluster.start()
        wait_for(lambda: len(fake.received) == 6, "three escalation SMS after the outage")
    assert all("超保证水位0.40米" in m.body for m in fake.received[3:])
