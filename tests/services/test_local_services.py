"""The local servers the tests and ``hydro demo`` run on, and the broker settings we ship."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiomqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hydro.local import LocalMosquitto, LocalPostgres


def test_postgres_serves_and_makes_databases(local_postgres: LocalPostgres) -> None:
    url = local_postgres.create_database("scratch_make")
    try:
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("scratch_make",)
    finally:
        local_postgres.drop_database("scratch_make")
    with psycopg.connect(local_postgres.url()) as conn:
        row = conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'scratch_make'")
        assert row.fetchone() == (0,)


def test_postgres_comes_back_after_kill_with_committed_data(
    postgres_factory: Callable[[], LocalPostgres],
) -> None:
    server = postgres_factory()
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (n int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    server.kill()
    server.start()
    with psycopg.connect(server.url()) as conn:
        assert conn.execute("SELECT n FROM kept").fetchall() == [(42,)]


def _session_properties() -> Properties:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    return properties


async def _subscriber(port: int, topic: str) -> aiomqtt.Client:
    client = aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=f"persistent-{topic}",
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=_session_properties(),
    )
    await client.__aenter__()
    await client.subscribe(topic, qos=1)
    return client


def _missed_while_away(broker: LocalMosquitto, topic: str, count: int, *, restart: bool) -> int:
    """Publishes ``count`` QoS 1 messages while a persistent subscriber is away; returns how
    many it gets when it comes back."""

    async def scenario() -> int:
        subscriber = await _subscriber(broker.port, topic)
        await subscriber.__aexit__(None, None, None)
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier=f"pub-{topic}") as pub:
            for i in range(count):
                await pub.publish(topic, str(i).encode(), qos=1)
        if restart:
            await asyncio.to_thread(broker.restart)
        subscriber = await _subscriber(broker.port, topic)
        received: set[bytes] = set()
        try:
            async with asyncio.timeout(30):
                async for message in subscriber.messages:
                    assert isinstance(message.payload, bytes)
                    received.add(message.payload)
                    if len(received) == count:
                        break
        except TimeoutError:
            pass
        finally:
            await subscriber.__aexit__(None, None, None)
        return len(received)

    return asyncio.run(scenario())


def test_shipped_broker_config_drops_nothing_for_an_absent_subscriber(
    local_mosquitto: LocalMosquitto, mqtt_topic_prefix: str
) -> None:
    # Mosquitto's default max_queued_messages (1000) would keep only 1000 of these.
    topic = f"{mqtt_topic_prefix}/q"
    assert _missed_while_away(local_mosquitto, topic, 5000, restart=False) == 5000


def test_queued_messages_survive_a_broker_restart(
    mosquitto_factory: Callable[[], LocalMosquitto], mqtt_topic_prefix: str
) -> None:
    broker = mosquitto_factory()
    assert _missed_while_away(broker, f"{mqtt_topic_prefix}/r", 300, restart=True) == 300
