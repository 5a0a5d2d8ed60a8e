"""The ingest stage end to end in one process: real Mosquitto in, real PostgreSQL out."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import psycopg
import pytest

from hydro.config import Config
from hydro.ingest import service as service_module
from hydro.ingest.service import (
    OTHER_UNKNOWN_FIELDS,
    UNKNOWN_FIELD_NAMES_KEPT,
    IngestService,
    IngestStats,
)
from hydro.local import LocalMosquitto, LocalPostgres
from hydro.models import Station
from hydro.store.db import open_pool
from hydro.store.readings import ReadingWriter
from hydro.store.schema import migrate
from tests.support import (
    count_rows,
    fetch,
    ingest_config,
    publish_json,
    publisher,
    reading,
    stations,
    wait_until,
)

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def iso(minutes_ago: int, offset: str = "+00:00") -> str:
    moment = NOW - dt.timedelta(minutes=minutes_ago)
    if offset == "":
        return (moment + dt.timedelta(hours=8)).replace(tzinfo=None).isoformat()
    return moment.isoformat().replace("+00:00", offset)


@pytest.fixture
def config(pg_url: str, local_mosquitto: LocalMosquitto, mqtt_topic_prefix: str) -> Config:
    """Ingest on the test's own database and the session broker."""
    return ingest_config(pg_url, local_mosquitto.port, mqtt_topic_prefix)


@pytest.fixture
def topic(mqtt_topic_prefix: str) -> str:
    """Where gateway gw-1 publishes its readings."""
    return f"{mqtt_topic_prefix}/gw-1/readings"


@contextlib.asynccontextmanager
async def running_ingest(
    config: Config, registry: Mapping[str, Station]
) -> AsyncIterator[IngestService]:
    stop = asyncio.Event()
    async with open_pool(config.database) as pool:
        async with pool.connection() as conn:
            await migrate(conn, config.database, config.registry.default_timezone)
        service = IngestService(
            config.ingest, config.mqtt, registry, ReadingWriter(pool), database=config.database
        )
        task = asyncio.create_task(service.run(stop))
        await wait_until(
            lambda: service.subscribed.is_set() or task.done(), what="the subscription"
        )
        if task.done():
            task.result()
        try:
            yield service
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_round_trip_single_reading_and_batch(
    pg_url: str, local_mosquitto: object, mqtt_topic_prefix: str, protocol: str
) -> None:
    port = local_mosquitto.port  # type: ignore[attr-defined]
    config = ingest_config(pg_url, port, mqtt_topic_prefix, mqtt={"protocol": protocol})
    topic = f"{mqtt_topic_prefix}/gw-1/readings"

    async def scenario() -> None:
        async with running_ingest(config, stations("60312345", "60312346")), publisher(port) as gw:
            await publish_json(gw, topic, reading("60312345", iso(10), water_level=771.54))
            await publish_json(
                gw,
                topic,
                {
                    "readings": [
                        reading("60312346", iso(5 * i, offset=""), water_level=800 + i, flow=3.5)
                        for i in range(12)
                    ]
                },
            )
            await wait_until(lambda: count_rows(pg_url) == 13, what="13 readings")

    asyncio.run(scenario())
    assert fetch(pg_url, "SELECT water_level FROM readings WHERE station = '60312345'") == [
        (771.54,)
    ]
    # Naive times are read in the station's zone (Asia/Shanghai, UTC+8).
    newest = fetch(pg_url, "SELECT max(time) FROM readings WHERE station = '60312346'")[0][0]
    assert newest == NOW


def test_bad_input_is_quarantined_with_its_reason_and_good_readings_stored(
    pg_url: str, local_mosquitto: object, mqtt_topic_prefix: str
) -> None:
    port = local_mosquitto.port  # type: ignore[attr-defined]
    config = ingest_config(pg_url, port, mqtt_topic_prefix)
    registry = {**stations("A1"), **stations("B2", gateway="gw-2")}

    async def scenario() -> None:
        async with running_ingest(config, registry), publisher(port) as gw:
            topic = f"{mqtt_topic_prefix}/gw-1/readings"
            await gw.publish(topic, b"{not json", qos=1)
            await publish_json(
                gw,
                topic,
                {
                    "readings": [
                        reading("A1", iso(0), water_level=771.0),
                        reading("ZZ", iso(0), water_level=771.0),  # unknown station
                        reading("B2", iso(0), water_level=771.0),  # belongs to gw-2: spoofed
                        reading("A1", iso(-30), water_level=771.0),  # 30 minutes in the future
                        reading("A1", iso(5), water_level=99999.0),  # implausible
                    ]
                },
            )
            await wait_until(
                lambda: count_rows(pg_url, "SELECT count(*) FROM quarantine") == 5,
                what="5 quarantined items",
            )

    asyncio.run(scenario())
    assert count_rows(pg_url) == 1
    quarantined = fetch(
        pg_url, "SELECT code, station, gateway, payload FROM quarantine ORDER BY id"
    )
    assert [(code, station) for code, station, _, _ in quarantined] == [
        ("malformed_json", None),
        ("unknown_station", "ZZ"),
        ("wrong_gateway", "B2"),
        ("future_time", "A1"),
        ("out_of_bounds", "A1"),
    ]
    assert bytes(quarantined[0][3]) == b"{not json"
    assert json.loads(bytes(quarantined[1][3]))["station"] == "ZZ"
    assert {gateway for _, _, gateway, _ in quarantined} == {"gw-1"}


def test_duplicates_absorbed_and_revisions_kept(pg_url: str, config: Config, topic: str) -> None:
    async def scenario() -> None:
        async with (
            running_ingest(config, stations("A1")) as service,
            publisher(config.mqtt.port) as gw,
        ):
            first = {"readings": [reading("A1", iso(5 * i), water_level=770.0) for i in range(3)]}
            await publish_json(gw, topic, first)
            await wait_until(lambda: service.stats.batches >= 1, what="first batch")
            await publish_json(gw, topic, first)  # a gateway re-sending its report
            await publish_json(gw, topic, reading("A1", iso(0), water_level=770.5))  # corrected
            await wait_until(lambda: service.stats.messages == 3, what="three messages")
            await wait_until(
                lambda: count_rows(pg_url, "SELECT count(*) FROM reading_revisions") == 1,
                what="one revision",
            )

    asyncio.run(scenario())
    assert count_rows(pg_url) == 3
    assert fetch(pg_url, "SELECT water_level FROM readings ORDER BY time DESC LIMIT 1") == [
        (770.5,)
    ]
    assert fetch(pg_url, "SELECT water_level FROM reading_revisions") == [(770.0,)]


def test_readings_published_while_hydro_is_down_arrive_when_it_returns(
    pg_url: str, config: Config, topic: str
) -> None:
    registry = stations("A1")

    async def scenario() -> None:
        async with running_ingest(config, registry):
            pass  # the first connection creates the persistent session
        async with publisher(config.mqtt.port) as gw:
            for i in range(50):
                await publish_json(gw, topic, reading("A1", iso(i), water_level=770.0 + i / 100))
        async with running_ingest(config, registry):
            await wait_until(lambda: count_rows(pg_url) == 50, what="50 queued readings")

    asyncio.run(scenario())


def test_broker_restart_loses_nothing(
    pg_url: str, mosquitto_factory: object, mqtt_topic_prefix: str
) -> None:
    broker = mosquitto_factory()  # type: ignore[operator]
    config = ingest_config(pg_url, broker.port, mqtt_topic_prefix)
    topic = f"{mqtt_topic_prefix}/gw-1/readings"

    async def scenario() -> None:
        async with running_ingest(config, stations("A1")) as service:
            async with publisher(broker.port) as gw:
                for i in range(20):
                    await publish_json(gw, topic, reading("A1", iso(i), water_level=770.0))
            await wait_until(lambda: count_rows(pg_url) == 20, what="20 readings")
            await asyncio.to_thread(broker.restart)
            async with publisher(broker.port) as gw:
                for i in range(20, 40):
                    await publish_json(gw, topic, reading("A1", iso(i), water_level=770.0))
            await wait_until(lambda: count_rows(pg_url) == 40, what="40 readings")
            assert service.stats.messages >= 40

    asyncio.run(scenario())


def test_database_restart_while_publishing_loses_nothing(
    own_cluster: tuple[LocalPostgres, str], local_mosquitto: object, mqtt_topic_prefix: str
) -> None:
    cluster, pg_url = own_cluster
    port = local_mosquitto.port  # type: ignore[attr-defined]
    config = ingest_config(pg_url, port, mqtt_topic_prefix)
    topic = f"{mqtt_topic_prefix}/gw-1/readings"
    total = 600

    async def scenario() -> int:
        async with running_ingest(config, stations("A1")) as service, publisher(port) as gw:
            for i in range(total):
                if i == total // 3:
                    await asyncio.to_thread(cluster.stop)
                if i == 2 * total // 3:
                    await asyncio.sleep(3)  # longer than connect_timeout: writes must fail
                    await asyncio.to_thread(cluster.start)
                await publish_json(gw, topic, reading("A1", iso(i), water_level=770.0))
            await wait_until(lambda: count_rows(pg_url) == total, seconds=60, what="all readings")
            return service.stats.database_retries

    assert asyncio.run(scenario()) > 0  # the outage was felt, and ridden out
    assert count_rows(pg_url) == total
    assert count_rows(pg_url, "SELECT count(*) FROM quarantine") == 0  # an outage is no defect


def test_shared_subscription_splits_the_stream_and_loses_nothing(
    pg_url: str, local_mosquitto: object, mqtt_topic_prefix: str
) -> None:
    port = local_mosquitto.port  # type: ignore[attr-defined]
    registry = stations("A1")
    first = ingest_config(
        pg_url, port, mqtt_topic_prefix, mqtt={"shared_group": "ingest", "client_id": "i-1"}
    )
    second = ingest_config(
        pg_url, port, mqtt_topic_prefix, mqtt={"shared_group": "ingest", "client_id": "i-2"}
    )
    topic = f"{mqtt_topic_prefix}/gw-1/readings"

    async def scenario() -> tuple[int, int]:
        async with (
            running_ingest(first, registry) as one,
            running_ingest(second, registry) as two,
            publisher(port) as gw,
        ):
            for i in range(200):
                await publish_json(gw, topic, reading("A1", iso(i), water_level=770.0))
            await wait_until(lambda: count_rows(pg_url) == 200, what="200 readings")
            return one.stats.messages, two.stats.messages

    one, two = asyncio.run(scenario())
    assert one + two == 200
    assert one > 0
    assert two > 0


def test_stopping_while_the_database_is_down_leaves_the_rest_to_the_broker(
    own_cluster: tuple[LocalPostgres, str], local_mosquitto: LocalMosquitto, mqtt_topic_prefix: str
) -> None:
    cluster, pg_url = own_cluster
    port = local_mosquitto.port
    config = ingest_config(pg_url, port, mqtt_topic_prefix)
    topic = f"{mqtt_topic_prefix}/gw-1/readings"
    registry = stations("A1")

    async def scenario() -> float:
        async with publisher(port) as gw:
            async with running_ingest(config, registry):
                for i in range(10):
                    await publish_json(gw, topic, reading("A1", iso(i), water_level=770.0))
                await wait_until(lambda: count_rows(pg_url) == 10, what="10 readings")
                await asyncio.to_thread(cluster.stop)
                for i in range(10, 20):
                    await publish_json(gw, topic, reading("A1", iso(i), water_level=770.0))
                await asyncio.sleep(0.5)  # received, but the database is gone
                began = time.monotonic()
            stopped_in = time.monotonic() - began
            await asyncio.to_thread(cluster.start)
            async with running_ingest(config, registry):
                await wait_until(lambda: count_rows(pg_url) == 20, what="the redelivered 10")
        return stopped_in

    assert asyncio.run(scenario()) < 20  # it gave up waiting instead of hanging
    assert count_rows(pg_url) == 20


# Messages that used to raise inside judging or in the quarantine's COPY, stopping all ingest
# (with the message never acknowledged, again at every start), with the reasons they now get.
POISON = [
    (b'{"station": "A1", "time": "0001-01-01T00:00:00+08:00", "water_level": 1.0}', "bad_time"),
    (b'{"station": "A1", "time": 1778112000, "water_level": ' + b"9" * 400 + b"}", "bad_value"),
    (b'{"station": "\\ud800", "time": 1778112000, "water_level": 1.0}', "unknown_station"),
    (b'{"station": "A1", "time": "x", "\\udfff": 1}', "bad_time"),
]


async def publish_then_restart(
    config: Config,
    pg_url: str,
    payloads: list[bytes],
    registry: Mapping[str, Station] | None = None,
    stored: int = 0,
) -> int:
    """Publishes ``payloads`` (``stored`` readings among them) and a valid reading, restarts
    ingest, publishes another reading; returns how many messages the restarted ingest received:
    1 unless some came again."""
    topic = f"{config.mqtt.topic_prefix}/gw-1/readings"
    registry = registry or stations("A1")
    async with publisher(config.mqtt.port) as gw:
        async with running_ingest(config, registry):
            for payload in payloads:
                await gw.publish(topic, payload, qos=1)
            await publish_json(gw, topic, reading("A1", iso(0), water_level=771.0))
            await wait_until(lambda: count_rows(pg_url) == stored + 1, what="readings after them")
        async with running_ingest(config, registry) as again:
            await publish_json(gw, topic, reading("A1", iso(5), water_level=771.0))
            await wait_until(lambda: count_rows(pg_url) == stored + 2, what="one after restart")
            return again.stats.messages


def test_poison_messages_are_quarantined_acknowledged_and_the_stream_goes_on(
    pg_url: str, config: Config
) -> None:
    payloads = [payload for payload, _ in POISON]
    # Acknowledged: nothing came again.
    assert asyncio.run(publish_then_restart(config, pg_url, payloads)) == 1
    quarantined = fetch(pg_url, "SELECT code, reason, station FROM quarantine ORDER BY id")
    assert [code for code, _, _ in quarantined] == [code for _, code in POISON]
    assert all(reason for _, reason, _ in quarantined)
    assert quarantined[2][2] == "\\ud800"  # kept visibly escaped in the text column


def test_anything_judging_raises_is_quarantined_as_internal_error_and_acknowledged(
    pg_url: str,
    config: Config,
    mqtt_topic_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The guard for defects still unknown: one is planted, since none is known any more."""
    judge = service_module.judge_message

    def defective(topic: str, payload: bytes, *args: Any, **kwargs: Any) -> Any:
        if b"planted" in payload:
            raise ZeroDivisionError("planted defect\nforged line")
        return judge(topic, payload, *args, **kwargs)

    monkeypatch.setattr(service_module, "judge_message", defective)
    with caplog.at_level(logging.INFO, logger="hydro.ingest"):
        assert asyncio.run(publish_then_restart(config, pg_url, [b'{"planted": 1}'])) == 1
    [(code, reason, payload, gateway)] = fetch(
        pg_url, "SELECT code, reason, payload, gateway FROM quarantine"
    )
    assert (code, bytes(payload), gateway) == ("internal_error", b'{"planted": 1}', "gw-1")
    assert "ZeroDivisionError: planted defect" in reason
    [logged] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert f"{mqtt_topic_prefix}/gw-1/readings (gateway=gw-1)" in logged.getMessage()
    assert "planted defect\\nforged line" in logged.getMessage()
    assert "\n" not in logged.getMessage()


def test_gateway_text_in_the_log_cannot_forge_a_line(
    pg_url: str, config: Config, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = config.mqtt.port
    forged = "X\n2026-05-07 08:00:00,000 CRITICAL hydro.alerts: all clear\r"

    async def scenario() -> None:
        async with running_ingest(config, stations("A1")), publisher(port) as gw:
            await publish_json(
                gw,
                topic,
                {"station": forged, "time": "garbage", forged: 1, "new\nfield": 2},
            )
            await publish_json(gw, topic, reading("A1", iso(0), water_level=1.0, **{forged: 2}))
            await wait_until(lambda: count_rows(pg_url) == 1, what="the reading")

    with caplog.at_level(logging.INFO, logger="hydro.ingest"):
        asyncio.run(scenario())
    about_it = [r for r in caplog.records if "CRITICAL" in r.getMessage()]
    assert len(about_it) == 2  # the quarantine line and the unknown-field line
    for record in about_it:
        assert "\n" not in record.getMessage()
        assert "\r" not in record.getMessage()
        assert "X\\n2026-05-07" in record.getMessage()


def test_endless_new_field_names_neither_grow_memory_nor_flood_the_log(
    pg_url: str, config: Config, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = config.mqtt.port

    async def scenario() -> IngestStats:
        async with running_ingest(config, stations("A1")) as service, publisher(port) as gw:
            for batch in range(3):
                names = {f"f{batch}_{i}": 1 for i in range(UNKNOWN_FIELD_NAMES_KEPT)}
                await publish_json(gw, topic, reading("A1", iso(batch), water_level=1.0, **names))
            await wait_until(lambda: count_rows(pg_url) == 3, what="the readings")
            return service.stats

    with caplog.at_level(logging.WARNING, logger="hydro.ingest"):
        stats = asyncio.run(scenario())
    assert len(stats.unknown_fields) == UNKNOWN_FIELD_NAMES_KEPT + 1
    assert stats.unknown_fields[OTHER_UNKNOWN_FIELDS] == 2 * UNKNOWN_FIELD_NAMES_KEPT
    assert sum(stats.unknown_fields.values()) == 3 * UNKNOWN_FIELD_NAMES_KEPT
    warned = [r for r in caplog.records if "unknown fields" in r.getMessage()]
    assert len(warned) == 1


@contextlib.asynccontextmanager
async def writer_held(pg_url: str) -> AsyncIterator[None]:
    """Holds the ingest writer's next commit (a lock on ``readings``) until the block ends:
    the messages that come meanwhile gather into the next batch."""
    conn = await asyncio.to_thread(psycopg.connect, pg_url)
    try:
        await asyncio.to_thread(conn.execute, "LOCK TABLE readings IN SHARE ROW EXCLUSIVE MODE")
        yield
    finally:
        await asyncio.to_thread(conn.close)  # rolls back: the lock goes


def writer_waits(pg_url: str) -> bool:
    """The writer's commit waits for the lock :func:`writer_held` took."""
    return count_rows(pg_url, "SELECT count(*) FROM pg_locks WHERE NOT granted") > 0


def test_a_lone_reading_is_committed_at_once_and_a_busy_writer_gathers_the_rest(
    pg_url: str, local_mosquitto: LocalMosquitto, mqtt_topic_prefix: str
) -> None:
    """With the writer idle a message is written at once, whatever ``batch_interval`` (here an
    hour); while it commits, what comes waits in one batch, written as soon as it is free."""
    config = ingest_config(
        pg_url, local_mosquitto.port, mqtt_topic_prefix, ingest={"batch_interval": "1h"}
    )
    topic = f"{mqtt_topic_prefix}/gw-1/readings"

    async def scenario() -> int:
        async with (
            publisher(config.mqtt.port) as gw,
            running_ingest(config, stations("A1")) as service,
        ):
            await publish_json(gw, topic, reading("A1", iso(0), water_level=771.0))
            await wait_until(lambda: count_rows(pg_url) == 1, what="the lone reading")
            async with writer_held(pg_url):
                await publish_json(gw, topic, reading("A1", iso(5), water_level=771.0))
                await wait_until(lambda: writer_waits(pg_url), what="the writer held")
                for minutes in range(10, 30, 5):
                    await publish_json(gw, topic, reading("A1", iso(minutes), water_level=771.0))
                await wait_until(lambda: service.stats.messages == 6, what="four more")
            await wait_until(lambda: count_rows(pg_url) == 6, what="the gathered batch")
            return service.stats.batches

    assert asyncio.run(scenario()) == 3


def test_a_message_the_database_refuses_is_quarantined_alone_and_the_batch_stored(
    pg_url: str, local_mosquitto: LocalMosquitto, mqtt_topic_prefix: str, topic: str
) -> None:
    """A NUL in a registry code stands for anything judging lets through that PostgreSQL will
    not take: the batch holding it used to fail for good, at every start."""
    config = ingest_config(
        pg_url, local_mosquitto.port, mqtt_topic_prefix, ingest={"batch_interval": "1h"}
    )
    refused = reading("A\x00", iso(0), water_level=771.0)

    async def scenario() -> tuple[int, int]:
        registry = stations("A1", "A\x00")
        async with publisher(config.mqtt.port) as gw, running_ingest(config, registry) as service:
            async with writer_held(pg_url):
                await publish_json(gw, topic, reading("A1", iso(20), water_level=1.0))
                await wait_until(lambda: writer_waits(pg_url), what="the writer held")
                # One batch of three messages: a valid reading, the refused one, a valid one.
                await publish_json(gw, topic, reading("A1", iso(10), water_level=1.0))
                await publish_json(gw, topic, refused)
                await publish_json(gw, topic, reading("A1", iso(5), water_level=1.0))
                await wait_until(lambda: service.stats.messages == 4, what="the batch")
            await wait_until(lambda: service.stats.batches == 2, what="both batches")
            return service.stats.slow_batches, count_rows(pg_url)

    assert asyncio.run(scenario()) == (1, 3)
    [(code, reason, payload, station)] = fetch(
        pg_url, "SELECT code, reason, payload, station FROM quarantine"
    )
    assert (code, station) == ("internal_error", None)
    assert reason.startswith("the database refused it: ")
    assert json.loads(bytes(payload)) == refused
