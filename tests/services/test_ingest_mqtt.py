"""The broker edge: a message is acknowledged only when hydro says so, on its own session."""

from __future__ import annotations

import asyncio

from hydro.config import MqttConfig
from hydro.ingest.mqtt import BrokerSession, Delivery
from hydro.local import LocalMosquitto
from tests.support import publisher, wait_until


async def _take(session: BrokerSession, count: int) -> list[Delivery]:
    taken: list[Delivery] = []
    async with asyncio.timeout(10):
        async for delivery in session.deliveries():
            taken.append(delivery)
            if len(taken) == count:
                break
    return taken


def _disconnections(broker: LocalMosquitto, client_id: str) -> int:
    return broker.log.read_text("utf-8").count(f"Client {client_id} disconnected.")


def test_only_acknowledged_messages_are_forgotten_by_the_broker(
    local_mosquitto: LocalMosquitto, mqtt_topic_prefix: str
) -> None:
    config = MqttConfig(
        port=local_mosquitto.port, topic_prefix=mqtt_topic_prefix, client_id=mqtt_topic_prefix
    )

    async def scenario() -> tuple[list[bytes], list[bytes], bool]:
        async with BrokerSession(config):
            pass  # creates the persistent session
        async with publisher(local_mosquitto.port) as gw:
            for i in range(10):
                await gw.publish(f"{mqtt_topic_prefix}/gw-1/readings", str(i).encode(), qos=1)
        async with BrokerSession(config) as first:
            received = await _take(first, 10)
            for delivery in received[:4]:
                assert first.acknowledge(delivery)
        # MQTT does not answer a DISCONNECT: a new connection with the same client id that the
        # broker reads first takes the session over and drops what the old one still had
        # unread, acks included (they come again: duplicates, absorbed downstream). Here the
        # second connection waits for the broker to have closed the first.
        await wait_until(
            lambda: _disconnections(local_mosquitto, config.client_id) == 2,
            what="the broker to close the first session",
        )
        async with BrokerSession(config) as second:
            again = await _take(second, 6)
            stale = second.acknowledge(received[5])  # an id from the old connection
            for delivery in again:
                second.acknowledge(delivery)
        return [d.payload for d in received], [d.payload for d in again], stale

    received, redelivered, stale_accepted = asyncio.run(scenario())
    assert received == [str(i).encode() for i in range(10)]
    assert redelivered == [str(i).encode() for i in range(4, 10)]
    assert not stale_accepted
