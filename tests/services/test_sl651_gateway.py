"""The SL 651 receiver over real TCP with real Mosquitto; end to end, ingest into PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from hydro import app
from hydro.config import Config
from hydro.gateway.sl651.frame import BEIJING, EOT, ESC, encode_report
from hydro.gateway.sl651.rtu import Rtu
from hydro.gateway.sl651.server import MqttPublisher, Sl651Gateway
from hydro.local import LocalMosquitto
from hydro.simulate import SimulationPlan
from hydro.stations.generate import generate_stations, write_stations_csv
from tests.services.test_ingest_service import running_ingest
from tests.support import count_rows, fetch, ingest_config, wait_until

ADDRESS = "0061901002"
NOW = dt.datetime.now(BEIJING).replace(second=0, microsecond=0)


def report(
    serial: int, *, address: str = ADDRESS, password: str = "0000", level: float = 771.5
) -> bytes:
    return encode_report(
        address=address,
        function=0x32,
        serial=serial,
        sent_at=NOW,
        observations=[(NOW, [(0x39, level), (0x38, 12.5)])],
        password=password,
    )


@contextlib.asynccontextmanager
async def receiver(
    config: Config, addresses: dict[str, str] | None = None
) -> AsyncIterator[tuple[Sl651Gateway, int]]:
    publisher = MqttPublisher(config.mqtt, config.sl651.client_id, 5.0)
    gateway = Sl651Gateway(config, addresses or {ADDRESS: "61901002"}, publisher)
    stop = asyncio.Event()
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(gateway.serve(stop, port.set_result))
    try:
        yield gateway, await port
    finally:
        stop.set()
        await task
        await publisher.close()


@contextlib.asynccontextmanager
async def listening(port: int, topic: str) -> AsyncIterator[list[aiomqtt.Message]]:
    received: list[aiomqtt.Message] = []
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"listener-{topic}") as client:
        await client.subscribe(topic, qos=1)

        async def collect() -> None:
            async for message in client.messages:
                received.append(message)

        task = asyncio.create_task(collect())
        try:
            yield received
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def payloads(messages: list[aiomqtt.Message], ending: str) -> list[dict[str, Any]]:
    return [
        json.loads(bytes(m.payload))  # type: ignore[arg-type]
        for m in messages
        if m.topic.value.endswith(ending)
    ]


def gateway_config(broker_port: int, prefix: str, **sl651: Any) -> Config:
    return ingest_config(
        "postgresql://unused@127.0.0.1/unused",
        broker_port,
        prefix,
        sl651={"host": "127.0.0.1", "port": 0, "client_id": f"sl651-{prefix}", **sl651},
    )


def test_frames_in_any_segmentation_are_published_then_answered(
    local_mosquitto: LocalMosquitto, mqtt_topic_prefix: str
) -> None:
    config = gateway_config(local_mosquitto.port, mqtt_topic_prefix)

    async def scenario() -> None:
        async with (
            listening(local_mosquitto.port, f"{mqtt_topic_prefix}/#") as messages,
            receiver(config) as (gateway, port),
        ):
            rtu = await Rtu.connect("127.0.0.1", port)
            await rtu.send(report(1) + report(2), answer=False)  # two frames, one segment
            answers = [await rtu.answer(), await rtu.answer()]
            assert [int.from_bytes(a.body[:2]) for a in answers] == [1, 2]
            assert all(a.end == ESC for a in answers)  # keep_online: the link stays up
            for byte in report(3):  # one frame, one segment per byte
                await rtu.send(bytes([byte]), answer=False)
            assert int.from_bytes((await rtu.answer()).body[:2]) == 3
            await rtu.close()
            await wait_until(lambda: len(messages) == 3, what="three messages")
            assert gateway.stats.answered == 3
        readings = [r for p in payloads(messages, "/readings") for r in p["readings"]]
        assert readings[0] == {
            "station": "61901002",
            "time": NOW.isoformat(),
            "water_level": 771.5,
            "battery_v": 12.5,
        }
        assert all(m.topic.value == f"{mqtt_topic_prefix}/sl651/readings" for m in messages)

    asyncio.run(scenario())


def test_refused_frames_are_published_for_quarantine_and_the_connection_goes_on(
    local_mosquitto: LocalMosquitto, mqtt_topic_prefix: str
) -> None:
    config = gateway_config(
        local_mosquitto.port, mqtt_topic_prefix, password="1234", keep_online=False
    )

    async def scenario() -> None:
        async with (
            listening(local_mosquitto.port, f"{mqtt_topic_prefix}/#") as messages,
            receiver(config) as (gateway, port),
        ):
            rtu = await Rtu.connect("127.0.0.1", port)
            bad_crc = bytearray(report(1, password="1234"))
            bad_crc[-1] ^= 0xFF
            await rtu.send(bytes(bad_crc), answer=False)
            await rtu.send(report(2, password="9999"), answer=False)
            await rtu.send(report(3, address="0099999999", password="1234"), answer=False)
            answer = await rtu.send(report(4, password="1234"))  # the connection still works
            assert answer is not None
            assert int.from_bytes(answer.body[:2]) == 4
            assert answer.end == EOT  # keep_online off: the RTU may hang up
            cut = Rtu(*await asyncio.open_connection("127.0.0.1", port))
            await cut.send(report(5, password="1234")[:20], answer=False)
            await cut.close()  # disconnects mid-frame
            await rtu.close()
            await wait_until(lambda: len(messages) == 5, what="four rejects and one reading")
            assert dict(gateway.stats.refused) == {
                "bad_crc": 1,
                "wrong_password": 1,
                "unknown_address": 1,
                "truncated": 1,
            }
        rejects = payloads(messages, "/rejects")
        assert [r["reason"].split(":")[0] for r in rejects] == [
            "sl651 bad_crc",
            "sl651 wrong_password",
            "sl651 unknown_address",
            "sl651 truncated",
        ]
        assert rejects[0]["raw_hex"] == bytes(bad_crc).hex().upper()
        assert rejects[0]["peer"].startswith("127.0.0.1:")
        # The station's code, not its RTU address, for the quarantine's station column.
        assert [r["station"] for r in rejects] == [None, "61901002", None, None]
        assert len(payloads(messages, "/readings")) == 1

    asyncio.run(scenario())


def test_without_the_broker_the_rtu_is_not_answered(
    mosquitto_factory: Callable[[], LocalMosquitto], mqtt_topic_prefix: str
) -> None:
    broker = mosquitto_factory()
    config = gateway_config(broker.port, mqtt_topic_prefix, publish_timeout="1s")
    broker.stop()

    async def scenario() -> None:
        async with receiver(config) as (gateway, port):
            rtu = await Rtu.connect("127.0.0.1", port)
            await rtu.send(report(1), answer=False)
            await wait_until(lambda: gateway.stats.unanswered == 1, what="the failed publish")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(rtu.answer(), 0.5)
            await rtu.close()

    asyncio.run(scenario())


def test_simulated_rtus_through_receiver_broker_and_ingest_are_stored_exactly_once(
    pg_url: str, local_mosquitto: LocalMosquitto, mqtt_topic_prefix: str, tmp_path: Path
) -> None:
    stations = [dataclasses.replace(s, gateway=None) for s in generate_stations(12, seed=3)]
    registry = tmp_path / "stations.csv"
    write_stations_csv(stations, registry)
    config = ingest_config(
        pg_url,
        local_mosquitto.port,
        mqtt_topic_prefix,
        registry={"stations": str(registry)},
        sl651={"host": "127.0.0.1", "port": 0, "client_id": f"sl651-{mqtt_topic_prefix}"},
    )
    plan = SimulationPlan(
        steps=3, speed=0, storm=1.0, batch=100, seed=1, stations=None, start=None, protocol="sl651"
    )

    bad = bytearray(report(9, address="00" + stations[0].code))
    bad[-2] ^= 0x01

    async def scenario() -> None:
        stop = asyncio.Event()
        port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        async with running_ingest(config, {s.code: s for s in stations}):
            gateway = asyncio.create_task(app.run_sl651_gateway(config, stop, port.set_result))
            bound = config.sl651.model_copy(update={"port": await port})
            progress = await app.run_simulation(config.model_copy(update={"sl651": bound}), plan)
            assert progress.readings == 36
            rtu = await Rtu.connect("127.0.0.1", bound.port)
            await rtu.send(bytes(bad), answer=False)
            await rtu.close()
            await wait_until(lambda: count_rows(pg_url) == 36, what="36 readings")
            await wait_until(
                lambda: count_rows(pg_url, "SELECT count(*) FROM quarantine") == 1,
                what="the refused frame in quarantine",
            )
            stop.set()
            await gateway

    asyncio.run(scenario())
    assert count_rows(pg_url, "SELECT count(DISTINCT (station, time)) FROM readings") == 36
    ((code, reason, payload, gateway),) = fetch(
        pg_url, "SELECT code, reason, payload, gateway FROM quarantine"
    )
    assert (code, gateway) == ("gateway_refused", "sl651")
    assert reason.startswith("sl651 bad_crc")
    assert bytes(payload).decode() == bytes(bad).hex().upper()  # the frame, kept whole
