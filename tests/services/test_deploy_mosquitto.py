"""The broker configurations hydro ships, run as shipped: deploy/mosquitto (TLS, accounts, ACL)
with only its port, paths and certificates changed, and hydro/local/mosquitto.conf."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import SecretStr

from hydro.broker import broker_problem, connection_options
from hydro.config import MqttConfig
from hydro.ingest.mqtt import BrokerSession
from hydro.local import LocalMosquitto, free_port
from tests.support import publisher

DEPLOY = Path(__file__).parents[2] / "deploy" / "mosquitto"
LOCAL_CONF = Path(__file__).parents[2] / "hydro" / "local" / "mosquitto.conf"
ACCOUNTS = ("hydro", "hydro-ingest-2", "gw-1-001")
SIZE_LIMIT = 2 * 1024 * 1024  # message_size_limit in both shipped files


class ShippedBroker(LocalMosquitto):
    """deploy/mosquitto/hydro.conf and hydro.acl, listening on a free loopback port."""

    def settings(self) -> str:
        etc = self.data_dir / "etc"
        text = (DEPLOY / "hydro.conf").read_text("utf-8")
        text = text.replace("listener 8883", f"listener {self.port} 127.0.0.1")
        text = text.replace("/etc/mosquitto/conf.d/", f"{etc}/").replace(
            "/etc/mosquitto/", f"{etc}/"
        )
        return text.replace("/var/lib/mosquitto/", f"{self.data_dir}/") + "\n"

    def prepare(self) -> None:
        """Certificates for 127.0.0.1, one password per account, the shipped ACL."""
        etc = self.data_dir / "etc"
        (etc / "certs").mkdir(parents=True)
        (etc / "hydro.acl").write_text((DEPLOY / "hydro.acl").read_text("utf-8"), "utf-8")
        certs = etc / "certs"
        (certs / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
        signed = ["-CAcreateserial", "-out", "broker.crt", "-days", "2", "-extfile", "san.ext"]
        key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for command in (
            ["req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=test-ca"],
            ["req", *key, "-keyout", "broker.key", "-out", "broker.csr", "-subj", "/CN=broker"],
            ["x509", "-req", "-in", "broker.csr", "-CA", "ca.crt", "-CAkey", "ca.key", *signed],
        ):
            subprocess.run(["openssl", *command], cwd=certs, check=True, capture_output=True)
        passwd = etc / "passwd"
        passwd.touch()
        for account in ACCOUNTS:
            subprocess.run(
                ["mosquitto_passwd", "-b", str(passwd), account, f"pw-{account}"],
                check=True,
                capture_output=True,
            )

    def account(self, username: str, **options: object) -> MqttConfig:
        """How hydro (or a gateway) is configured to reach this broker as ``username``."""
        return MqttConfig.model_validate(
            {
                "port": self.port,
                "tls": True,
                "ca_file": self.data_dir / "etc" / "certs" / "ca.crt",
                "username": username,
                "password": SecretStr(f"pw-{username}"),
                **options,
            }
        )


@pytest.fixture
def shipped_broker(tmp_path: Path) -> Iterator[ShippedBroker]:
    broker = ShippedBroker(tmp_path / "broker")
    broker.data_dir.mkdir()
    broker.prepare()
    broker.start()
    yield broker
    broker.stop()


def _resuming(config: MqttConfig, identifier: str, *, clean_start: bool) -> aiomqtt.Client:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    return aiomqtt.Client(
        identifier=identifier,
        clean_start=clean_start,
        properties=properties,
        **connection_options(config),
    )


async def _publish(gateway: MqttConfig, *payloads: bytes) -> None:
    async with aiomqtt.Client(identifier="gw-1-001", **connection_options(gateway)) as gw:
        for payload in payloads:
            await gw.publish("hydro/gw-1-001/readings", payload, qos=1)


async def _queued_for(hydro: MqttConfig, gateway: MqttConfig) -> list[bytes]:
    """What hydro's session had queued, up to a message published now."""
    received: list[bytes] = []
    async with BrokerSession(hydro) as session:
        await _publish(gateway, b"now")
        async with asyncio.timeout(20):
            async for delivery in session.deliveries():
                session.acknowledge(delivery)
                if delivery.payload == b"now":
                    return received
                received.append(delivery.payload)
    return received


@pytest.mark.parametrize("clean_start", [False, True], ids=["resume", "discard"])
def test_a_gateway_with_hydros_client_id_neither_gets_nor_loses_hydros_readings(
    shipped_broker: ShippedBroker, clean_start: bool
) -> None:
    hydro = shipped_broker.account("hydro")
    gateway = shipped_broker.account("gw-1-001")
    topic = "hydro/gw-1-001/readings"
    queued = [f"reading {i}".encode() for i in range(5)]

    async def scenario() -> tuple[list[bytes], list[bytes]]:
        async with BrokerSession(hydro):
            pass  # the persistent session, subscribed, now waiting for hydro
        await _publish(gateway, *queued)
        async with _resuming(gateway, hydro.client_id, clean_start=clean_start) as attacker:
            # A round trip: whatever the broker sends a resumed session comes before its answer.
            await attacker.subscribe(topic, qos=1)
            stolen = [await anext(attacker.messages) for _ in range(len(attacker.messages))]
        received = await _queued_for(hydro, gateway)
        return [bytes(m.payload) for m in stolen], received  # type: ignore[arg-type]

    stolen, received = asyncio.run(scenario())
    assert stolen == []
    assert received == queued


def test_the_readiness_probe_leaves_hydros_session_alone(shipped_broker: ShippedBroker) -> None:
    hydro = shipped_broker.account("hydro")
    gateway = shipped_broker.account("gw-1-001")
    queued = [f"reading {i}".encode() for i in range(5)]

    async def scenario() -> tuple[str | None, list[bytes]]:
        async with BrokerSession(hydro):
            pass
        await _publish(gateway, *queued)
        problem = await broker_problem(hydro)
        return problem, await _queued_for(hydro, gateway)

    assert asyncio.run(scenario()) == (None, queued)


def test_the_readiness_probe_says_when_no_broker_answers() -> None:
    problem = asyncio.run(broker_problem(MqttConfig(port=free_port())))
    assert (problem or "").startswith("unreachable: ")


def test_two_ingest_accounts_share_the_stream_without_taking_over_each_other(
    shipped_broker: ShippedBroker,
) -> None:
    first = shipped_broker.account("hydro", shared_group="ingest")
    second = shipped_broker.account("hydro-ingest-2", shared_group="ingest")
    gateway = shipped_broker.account("gw-1-001")
    sent = [f"reading {i}".encode() for i in range(40)]

    async def take_all(one: BrokerSession, other: BrokerSession) -> list[bytes]:
        received: list[bytes] = []

        async def drain(session: BrokerSession) -> None:
            async for delivery in session.deliveries():
                session.acknowledge(delivery)
                received.append(delivery.payload)
                if len(received) == len(sent):
                    return

        async with asyncio.timeout(20):
            tasks = [asyncio.create_task(drain(s)) for s in (one, other)]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
        return received

    async def scenario() -> list[bytes]:
        async with BrokerSession(first) as one, BrokerSession(second) as other:
            await _publish(gateway, *sent)
            return await take_all(one, other)

    assert sorted(asyncio.run(scenario())) == sorted(sent)


def test_the_production_file_carries_every_setting_of_the_local_one() -> None:
    production = (DEPLOY / "hydro.conf").read_text("utf-8").splitlines()
    for line in LOCAL_CONF.read_text("utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            assert line in production


def test_a_message_above_the_size_limit_does_not_reach_a_subscriber(
    local_mosquitto: LocalMosquitto, mqtt_topic_prefix: str
) -> None:
    topic = f"{mqtt_topic_prefix}/gw-1/readings"
    largest, oversized = b"x" * SIZE_LIMIT, b"y" * (SIZE_LIMIT + 1)

    async def scenario() -> list[bytes]:
        async with publisher(local_mosquitto.port, f"{mqtt_topic_prefix}-sub") as subscriber:
            await subscriber.subscribe(topic, qos=1)
            async with publisher(local_mosquitto.port, f"{mqtt_topic_prefix}-gw") as gw:
                await gw.publish(topic, largest, qos=1)
            # Mosquitto 2.0.11 closes the connection of whoever publishes too large a message.
            with contextlib.suppress(aiomqtt.MqttError):
                async with publisher(local_mosquitto.port, f"{mqtt_topic_prefix}-big") as big:
                    await big.publish(topic, oversized, qos=1)
            async with publisher(local_mosquitto.port, f"{mqtt_topic_prefix}-gw") as gw:
                await gw.publish(topic, b"after", qos=1)
            received: list[bytes] = []
            async with asyncio.timeout(20):
                async for message in subscriber.messages:
                    received.append(message.payload)  # type: ignore[arg-type]
                    if message.payload == b"after":
                        return received
        return received

    received = asyncio.run(scenario())
    assert [len(payload) for payload in received] == [SIZE_LIMIT, len(b"after")]


def test_a_gateway_can_publish_only_its_own_readings(shipped_broker: ShippedBroker) -> None:
    """A stolen gateway account cannot speak for another gateway, nor read the stream."""
    hydro, gateway = shipped_broker.account("hydro"), shipped_broker.account("gw-1-001")

    async def as_gateway(action: str) -> list[bytes]:
        overheard: list[bytes] = []
        # The broker refuses by an error code or by silence, depending on the protocol version.
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            async with aiomqtt.Client(identifier="gw-1-001", **connection_options(gateway)) as gw:
                if action == "spoof":
                    await gw.publish("hydro/gw-2-002/readings", b"spoofed", qos=1)
                else:
                    await gw.subscribe("hydro/+/readings", qos=1)
                    await gw.publish("hydro/gw-1-001/readings", b"own", qos=1)
                    async with asyncio.timeout(2):
                        async for message in gw.messages:
                            overheard.append(bytes(message.payload))  # type: ignore[arg-type]
        return overheard

    async def scenario() -> tuple[list[str], list[bytes]]:
        async with BrokerSession(hydro) as session:
            await as_gateway("spoof")
            overheard = await as_gateway("listen")
            topics: list[str] = []
            async with asyncio.timeout(20):
                async for delivery in session.deliveries():
                    session.acknowledge(delivery)
                    topics.append(delivery.topic)
                    if delivery.payload == b"own":
                        break
        return topics, overheard

    topics, overheard = asyncio.run(scenario())
    assert topics == ["hydro/gw-1-001/readings"]
    assert overheard == []
