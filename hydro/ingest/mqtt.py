"""The MQTT edge of the ingest stage: one broker connection, messages in, acknowledgements out.

A gateway's reading is ours only once it is committed to the database, so the PUBACK that lets
the broker forget a message must wait for that commit. aiomqtt 2.x acknowledges every message as
soon as it is handed over and has no public switch for this (aiomqtt issue #345); paho-mqtt, which
it wraps, has ``manual_ack``. :class:`BrokerSession` is the one place that reaches into aiomqtt's
paho client to turn it on and to send the acknowledgement later. Everything else sees only
:class:`Delivery` objects.

Together with a persistent session (MQTT 5 session expiry, or clean session off for 3.1.1) and
QoS 1 this means: a message published while hydro is down waits at the broker; a message received
but not yet committed when hydro dies is delivered again; duplicates are absorbed by the
(station, time) key downstream.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hydro.broker import connection_options
from hydro.config import MqttConfig
from hydro.errors import BrokerUnavailable

log = logging.getLogger(__name__)
# How long a clean close waits for acknowledgements still queued to reach the broker.
_FLUSH_POLL_SECONDS = 0.005
_FLUSH_POLLS = 400  # 2 s


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message as the broker delivered it, with what is needed to acknowledge it later."""

    topic: str
    payload: bytes
    received_at: dt.datetime
    mid: int
    qos: int
    session: BrokerSession


class BrokerSession:
    """One connection to the broker; acknowledgements are only valid on the session that received.

    After a reconnect, message ids start over: acknowledging an old id on the new connection would
    confirm a different, unstored message. So each delivery carries its session, and
    :meth:`acknowledge` ignores deliveries from a session that is no longer connected; the broker
    sends those messages again.
    """

    def __init__(self, config: MqttConfig) -> None:
        self._config = config
        self._client = aiomqtt.Client(
            identifier=config.client_id,
            # Keep our subscription and the messages queued for it across disconnects.
            clean_session=False if config.protocol == "3.1.1" else None,
            clean_start=False if config.protocol == "5" else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=_connect_properties(config),
            **connection_options(config),
        )
        # The documented workaround for aiomqtt issue #345: paho's own switch, set before connect.
        self._client._client.manual_ack_set(True)
        self._connected = False

    async def __aenter__(self) -> BrokerSession:
        try:
            await self._client.__aenter__()
            # One SUBSCRIBE for both topics: readings, and what gateways refused themselves.
            await self._client.subscribe(
                [(self._config.subscription, 1), (self._config.rejects_subscription, 1)]
            )
        except aiomqtt.MqttError as exc:
            await self._close_quietly()
            raise BrokerUnavailable(
                f"cannot reach broker {self._config.host}:{self._config.port}: {exc}"
            ) from exc
        self._connected = True
        log.info(
            "connected to broker %s:%s as %s, subscribed to %s",
            self._config.host,
            self._config.port,
            self._config.client_id,
            self._config.subscription,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._connected:
            await self._flush_acknowledgements()
        self._connected = False
        await self._close_quietly()

    async def _flush_acknowledgements(self) -> None:
        """PUBACKs given just before a clean close sit in paho's send queue, and closing would
        drop them: the broker would send those stored messages again (absorbed as duplicates,
        but needless). Wait, briefly, until paho has nothing left to write."""
        for _ in range(_FLUSH_POLLS):  # paho offers no event for an empty send queue
            if not self._client._client.want_write():
                return
            await asyncio.sleep(_FLUSH_POLL_SECONDS)

    async def _close_quietly(self) -> None:
        try:
            await self._client.__aexit__(None, None, None)
        except aiomqtt.MqttError as exc:
            log.debug("broker connection closed uncleanly: %s", exc)

    async def deliveries(self) -> AsyncIterator[Delivery]:
        """Messages in arrival order until the connection drops (then BrokerUnavailable)."""
        try:
            async for message in self._client.messages:
                payload = message.payload
                yield Delivery(
                    topic=message.topic.value,
                    payload=payload if isinstance(payload, bytes) else str(payload).encode(),
                    received_at=dt.datetime.now(dt.UTC),
                    mid=message.mid,
                    qos=message.qos,
                    session=self,
                )
        except aiomqtt.MqttError as exc:
            self._connected = False
            raise BrokerUnavailable(f"lost the broker connection: {exc}") from exc

    def acknowledge(self, delivery: Delivery) -> bool:
        """Sends the PUBACK for a committed delivery; False when its session is gone."""
        if delivery.qos == 0:
            return True
        if delivery.session is not self or not self._connected:
            return False
        self._client._client.ack(delivery.mid, delivery.qos)
        return True


def _connect_properties(config: MqttConfig) -> Properties | None:
    if config.protocol != "5":
        return None
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = int(config.session_expiry.total_seconds())
    # The broker may have this many messages on their way to us, unacknowledged: enough to fill
    # a couple of batches while one commits, few enough to bound our memory.
    properties.ReceiveMaximum = config.max_inflight
    return properties
