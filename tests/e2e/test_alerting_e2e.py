"""From gateway to SMS: ``hydro run`` with real Mosquitto, PostgreSQL and the twilio client."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import yaml

from hydro.cli import main
from hydro.local import LocalMosquitto, LocalPostgres
from tests.support import (
    HEFENG,
    HEFENG_GATEWAY,
    REPO,
    count_rows,
    minutes_ago_at_start,
    publish_json,
    publish_levels,
    publisher,
    reading,
    start_hydro,
    write_config,
)
from tests.twilio_server import FakeTwilio


def at(minutes_ago: int) -> str:
    return minutes_ago_at_start(minutes_ago).isoformat()


def local_time(minutes_ago: int) -> str:
    moment = minutes_ago_at_start(minutes_ago).astimezone(dt.timezone(dt.timedelta(hours=8)))
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

    def start(
        fake: FakeTwilio,
        database_url: str | None = None,
        name: str = "run",
        interval: str = "1s",
        pool: int = 1,
        **sms: str | int,
    ) -> subprocess.Popen[bytes]:
        """``name`` tells apart processes running at once (a standby): its config file and
        MQTT client id; ``interval`` is ``alerting.interval``, ``pool`` the connections the pool
        opens at start."""
        config = write_config(
            tmp_path / f"{name}.yaml",
            database_url or pg_url,
            local_mosquitto.port,
            mqtt_topic_prefix,
            mqtt={"client_id": f"{name}-{mqtt_topic_prefix}"},
            database={"pool_min": pool, "pool_max": max(pool, 4)},
            alerting={"rules": str(tmp_path / "rules"), "interval": interval},
            sms={"provider": "twilio", "retry_first": "100ms", **sms},
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

    def publish(*levels: tuple[int, float]) -> None:
        publish_levels(local_mosquitto, mqtt_topic_prefix, *levels)

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
        # Killed after the sends are recorded: a kill between Twilio's accept and the record is
        # the documented window for a duplicate, not what this test is about.
        sent = "SELECT count(*) FROM outbox WHERE status = 'sent'"
        wait_for(lambda: count_rows(pg_url, sent) == 6, "six SMS recorded as sent")

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
    assert count_rows(pg_url, sent) == 9

    config = str(process.args[4])  # type: ignore[index]
    for name, value in fake.environment().items():
        monkeypatch.setenv(name, value)
    assert main(["--config", config, "alerts", "show", "1"]) == 0
    shown = capsys.readouterr().out
    assert [line.split()[2] for line in shown.splitlines()[1:4]] == ["open", "escalate", "clear"]
    assert shown.count("SMS #") == 9


def test_a_hot_standby_starting_while_sms_are_being_sent_sends_none_again(
    hydro_run: Callable[..., subprocess.Popen[bytes]],
    local_mosquitto: LocalMosquitto,
    mqtt_topic_prefix: str,
    pg_url: str,
) -> None:
    """The README's hot standby: a second ``hydro run`` starts while the first waits for Twilio
    to answer three SMS. It must not send them too."""
    slow = {"provider_timeout": "60s", "claim_lease": "2m"}
    with FakeTwilio() as fake:
        fake.pause()
        hydro_run(fake, **slow)
        publish_levels(local_mosquitto, mqtt_topic_prefix, (6, 906.63), (5, 908.62))
        wait_for(lambda: len(fake.received) == 3, "three warning SMS at the provider")
        hydro_run(fake, name="standby", **slow)
        time.sleep(3)  # the standby's dispatcher polls every second
        fake.answer_again()
        wait_for(
            lambda: count_rows(pg_url, "SELECT count(*) FROM outbox WHERE status = 'sent'") == 3,
            "the three SMS recorded as sent",
        )
        assert len(fake.received) == 3


def test_alerts_open_and_clear_on_schedule_while_the_provider_never_answers(
    hydro_run: Callable[..., subprocess.Popen[bytes]],
    local_mosquitto: LocalMosquitto,
    mqtt_topic_prefix: str,
    pg_url: str,
    tmp_path: Path,
) -> None:
    """Twilio takes the requests and hangs: every send times out and is retried, and meanwhile
    the evaluation goes on, so the alert opens and clears on time."""

    def publish(*levels: tuple[int, float]) -> None:
        publish_levels(local_mosquitto, mqtt_topic_prefix, *levels)

    def alerts(state: str) -> int:
        return count_rows(pg_url, f"SELECT count(*) FROM alerts WHERE state = '{state}'")

    log = tmp_path / "hydro.log"
    with FakeTwilio() as fake:
        fake.stop_answering()
        hydro_run(fake, provider_timeout="1s", claim_lease="2s", retry_max="1s", max_attempts=50)
        publish((6, 906.63), (5, 908.62))  # crosses 警戒
        wait_for(lambda: alerts("open") == 1, "the alert to open")
        wait_for(lambda: len(fake.received) >= 3, "three SMS stuck at the provider")
        publish((4, 908.4), (3, 908.3))  # two readings below 908.50 - 0.05: clear
        wait_for(lambda: alerts("cleared") == 1, "the alert to clear while sends hang")
        wait_for(lambda: "did not answer within 1s" in log.read_text(), "a send to time out")
        assert "retry in" in log.read_text()
        fake.answer_again()
        wait_for(
            lambda: count_rows(pg_url, "SELECT count(*) FROM outbox WHERE status = 'sent'") == 6,
            "the warning and the clear SMS once the provider answers again",
        )
        accepted = [(m.to, m.body) for m in fake.received if m.sid]
    assert len(accepted) == len(set(accepted)) == 6


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

    with FakeTwilio() as fake:
        hydro_run(fake)
        publish_levels(
            local_mosquitto,
            mqtt_topic_prefix,
            *levels,
            station=maichong,
            gateway=gateway,
            client="bd",
        )
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
    own_cluster: tuple[LocalPostgres, str],
    local_mosquitto: LocalMosquitto,
    mqtt_topic_prefix: str,
) -> None:
    cluster, database = own_cluster
    topic = f"{mqtt_topic_prefix}/{HEFENG_GATEWAY}/readings"

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


def test_a_crossing_is_announced_as_it_arrives_without_waiting_for_the_tick(
    hydro_run: Callable[..., subprocess.Popen[bytes]],
    local_mosquitto: LocalMosquitto,
    mqtt_topic_prefix: str,
) -> None:
    with FakeTwilio() as fake:
        hydro_run(fake, interval="1h")  # one tick at start, the next an hour later
        publish_levels(local_mosquitto, mqtt_topic_prefix, (10, 908.7))
        wait_for(lambda: len(fake.received) == 3, "three warning SMS woken by the reading")
    assert all("超警戒水位" in m.body for m in fake.received)


def _listener_log(tmp_path: Path, what: str) -> int:
    """How many times the log says the wake-up connection was lost, or came back."""
    return _log(tmp_path).count(
        "wake-up connection lost" if what == "lost" else "readings arrive again, the wake-up"
    )


def _kill_listener(url: str, database: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'hydro-wakeup' AND datname = %s",
            (database,),
        ).fetchall()
    assert killed == [(True,)]


def test_wake_ups_come_back_after_the_listener_is_killed_and_after_a_database_restart(
    hydro_run: Callable[..., subprocess.Popen[bytes]],
    own_cluster: tuple[LocalPostgres, str],
    local_mosquitto: LocalMosquitto,
    mqtt_topic_prefix: str,
    tmp_path: Path,
) -> None:
    cluster, database = own_cluster
    with FakeTwilio() as fake:
        hydro_run(fake, database, interval="1h")  # every evaluation after start is a wake-up
        wait_for(lambda: "evaluating as readings arrive" in _log(tmp_path), "the listener")
        _kill_listener(database, "hydro")
        wait_for(lambda: _listener_log(tmp_path, "back") == 1, "the listener back")
        assert _listener_log(tmp_path, "lost") >= 1
        publish_levels(local_mosquitto, mqtt_topic_prefix, (10, 908.7))
        wait_for(lambda: len(fake.received) == 3, "three warning SMS after the listener's return")
        cluster.restart()
        wait_for(lambda: _listener_log(tmp_path, "back") == 2, "the listener back after restart")
        publish_levels(local_mosquitto, mqtt_topic_prefix, (5, 910.4))
        wait_for(lambda: len(fake.received) == 6, "three escalation SMS after the restart")
    assert all("超保证水位0.40米" in m.body for m in fake.received[3:])


def test_while_the_listener_cannot_reconnect_the_ticks_still_evaluate(
    hydro_run: Callable[..., subprocess.Popen[bytes]],
    pg_url: str,
    local_postgres: LocalPostgres,
    local_mosquitto: LocalMosquitto,
    mqtt_topic_prefix: str,
    tmp_path: Path,
) -> None:
    name = pg_url.rsplit("/", 1)[-1]
    with FakeTwilio() as fake:
        hydro_run(fake, interval="1s", pool=4)
        wait_for(lambda: "evaluating as readings arrive" in _log(tmp_path), "the listener")
        # No new connection is accepted: the listener stays away, the pool keeps what it has.
        with psycopg.connect(local_postgres.url(), autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            _kill_listener(local_postgres.url(), name)
            wait_for(lambda: _listener_log(tmp_path, "lost") >= 2, "the listener failing again")
            publish_levels(local_mosquitto, mqtt_topic_prefix, (10, 908.7))
            wait_for(lambda: len(fake.received) == 3, "three warning SMS from the ticks")
            assert _listener_log(tmp_path, "back") == 0
        finally:
            with psycopg.connect(local_postgres.url(), autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        wait_for(lambda: _listener_log(tmp_path, "back") == 1, "the listener back")


def _log(tmp_path: Path) -> str:
    return (tmp_path / "hydro.log").read_text(errors="replace")
