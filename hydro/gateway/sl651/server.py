"""``hydro gateway sl651``: RTU connections in, gateway-contract messages out, RTUs answered.

Per connection: bytes go through a :class:`Splitter` (frames arrive in any TCP segmentation), a
:class:`Reassembler` (multi-packet messages) and :func:`decode`; a report from a known station
with the right password becomes one MQTT message on ``<prefix>/<gateway>/readings`` at QoS 1.
The RTU is answered (the confirmation frame, ending ESC to keep the link, or EOT with
``sl651.keep_online: false``) only once the broker has acknowledged
that message, so a crash or a broker outage loses nothing an RTU was told is delivered: it was
not answered and sends again. Link-keeping reports (2F) carry no data and are not answered, as
the standard has it.

A refused frame (bad CRC, unknown address, wrong password, impossible BCD, truncated) is logged
with its hex and the peer's address, counted, and published to ``<prefix>/<gateway>/rejects``
for the ingest stage to quarantine; it is not answered, and the connection goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Protocol

import aiomqtt

from hydro.broker import connection_options
from hydro.config import Config, MqttConfig
from hydro.errors import BrokerUnavailable, Problem, RegistryError
from hydro.gateway.sl651.convert import RainCounters, readings_of
from hydro.gateway.sl651.frame import (
    EOT,
    ESC,
    LINK_KEEPING,
    Frame,
    Reassembler,
    Refused,
    Splitter,
    decode,
    encode_reply,
)
from hydro.gateway.sl651.frame import Problem as FrameProblem
from hydro.logs import log_progress_every
from hydro.models import Station

log = logging.getLogger(__name__)

_READ_SIZE = 65536
_HEX_IN_LOG = 512  # bytes of a refused frame shown in the log (all of it goes to quarantine)


def default_address(code: str) -> str | None:
    """The RTU address of a station without ``sl651_address``: SL 651's ten digits carry an
    8-digit hydrological station code as ``00`` + code; a 10-digit code is the address."""
    if code.isdigit() and len(code) in (8, 10):
        return code.rjust(10, "0")
    return None


def address_of(station: Station) -> str | None:
    return station.sl651_address or default_address(station.code)


def address_map(stations: Iterable[Station]) -> dict[str, str]:
    """RTU address -> station code; two stations on one address stop the receiver."""
    codes: dict[str, str] = {}
    problems = []
    for station in stations:
        address = address_of(station)
        if address is None:
            continue
        if address in codes:
            problems.append(
                Problem(
                    "registry",
                    f"stations {codes[address]} and {station.code} share SL 651 address {address}",
                )
            )
        codes[address] = station.code
    if problems:
        raise RegistryError(problems)
    return codes


class Publisher(Protocol):
    async def publish(self, topic: str, payload: bytes) -> None:
        """Returns once the broker acknowledged (QoS 1); BrokerUnavailable if it did not."""


class MqttPublisher:
    """One broker connection for every RTU connection, opened on first use and again after a
    failure; a publish that fails raises BrokerUnavailable and the next one reconnects."""

    def __init__(self, config: MqttConfig, client_id: str, timeout: float) -> None:
        self._config = config
        self._client_id = client_id
        self._timeout = timeout
        self._client: aiomqtt.Client | None = None
        self._lock = asyncio.Lock()
        self._failed_at = -float("inf")

    async def publish(self, topic: str, payload: bytes) -> None:
        client = await self._connected()
        try:
            async with asyncio.timeout(self._timeout):
                await client.publish(topic, payload, qos=1)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            await self._drop(client)
            raise BrokerUnavailable(f"no PUBACK from the broker: {exc or 'timed out'}") from exc

    async def _connected(self) -> aiomqtt.Client:
        async with self._lock:
            if self._client is not None:
                return self._client
            if time.monotonic() - self._failed_at < self._config.reconnect_min.total_seconds():
                raise BrokerUnavailable("broker unreachable a moment ago; not retrying yet")
            client = aiomqtt.Client(
                identifier=self._client_id,
                max_inflight_messages=1000,  # one per RTU waiting for its answer, within reason
                **connection_options(self._config),
            )
            client.pending_calls_threshold = 100_000  # thousands of RTUs waiting is the plan
            try:
                async with asyncio.timeout(self._timeout):
                    await client.__aenter__()
            except (aiomqtt.MqttError, TimeoutError) as exc:
                self._failed_at = time.monotonic()
                raise BrokerUnavailable(
                    f"cannot reach broker {self._config.host}:{self._config.port}: {exc}"
                ) from exc
            log.info("connected to broker %s:%s", self._config.host, self._config.port)
            self._client = client
            return client

    async def _drop(self, client: aiomqtt.Client) -> None:
        async with self._lock:
            if self._client is client:
                self._client = None
                self._failed_at = time.monotonic()
        with contextlib.suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)

    async def close(self) -> None:
        if self._client is not None:
            await self._drop(self._client)


@dataclass
class GatewayStats:
    connections: int = 0  # open now
    frames: int = 0
    reports: int = 0
    readings: int = 0
    answered: int = 0
    unanswered: int = 0  # reports whose message the broker did not acknowledge
    refused: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)  # elements hydro does not store

    def __str__(self) -> str:
        """``name=value`` for every count, in the order above: the progress line."""
        counts = ((f.name, getattr(self, f.name)) for f in fields(self))
        return " ".join(f"{name}={dict(n) if isinstance(n, Counter) else n}" for name, n in counts)


class Sl651Gateway:
    """The receiver; :meth:`serve` runs until ``stop`` is set."""

    def __init__(
        self,
        config: Config,
        addresses: Mapping[str, str],
        publisher: Publisher,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._settings = config.sl651
        password = config.sl651.password
        self._password = password.get_secret_value().upper() if password else None
        self._addresses = dict(addresses)
        self._publisher = publisher
        self._clock = clock
        prefix = f"{config.mqtt.topic_prefix}/{config.sl651.gateway}"
        self._readings_topic = f"{prefix}/readings"
        self._rejects_topic = f"{prefix}/rejects"
        self._counters = RainCounters()
        self._answer_end = ESC if config.sl651.keep_online else EOT
        self.stats = GatewayStats()
        self.port: int | None = None  # the bound port, once listening

    async def serve(
        self, stop: asyncio.Event, listening: Callable[[int], None] | None = None
    ) -> None:
        """Accepts RTUs until ``stop``; ``listening`` is told the bound port once RTUs can come."""
        server = await asyncio.start_server(
            self._connection, self._settings.host, self._settings.port, backlog=4096
        )
        self.port = server.sockets[0].getsockname()[1]
        log.info(
            "SL 651 receiver listening on %s:%d, publishing to %s",
            self._settings.host,
            self.port,
            self._readings_topic,
        )
        if listening is not None:
            listening(self.port)
        progress = asyncio.create_task(log_progress_every(self._log_progress))
        try:
            async with server:
                await stop.wait()
        finally:
            progress.cancel()
            self._log_progress()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer(writer)
        splitter, reassembler = Splitter(), Reassembler()
        idle = self._settings.idle_timeout.total_seconds()
        self.stats.connections += 1
        try:
            while True:
                try:
                    async with asyncio.timeout(idle):  # no task per read, unlike wait_for
                        data = await reader.read(_READ_SIZE)
                except TimeoutError:
                    log.info("peer=%s silent for %.0fs: closing", peer, idle)
                    break
                if not data:
                    break
                for item in splitter.feed(data):
                    await self._handle(item, reassembler, peer, writer)
        except (ConnectionError, OSError) as exc:
            log.info("peer=%s connection lost: %s", peer, exc)
        finally:
            self.stats.connections -= 1
            for item in [*splitter.close(), *reassembler.close()]:
                await self._refuse(item, peer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _handle(
        self,
        item: Frame | Refused,
        reassembler: Reassembler,
        peer: str,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.stats.frames += 1
        if isinstance(item, Frame):
            joined = reassembler.add(item)
            if joined is None:
                return  # more packets to come; the whole message is answered
            item = joined
        if isinstance(item, Refused):
            await self._refuse(item, peer)
            return
        frame = item
        station = self._addresses.get(frame.address)
        if self._password is not None and frame.password != self._password:
            detail = "password does not match"
            refused = Refused(FrameProblem.WRONG_PASSWORD, detail, frame.raw, frame.address)
            await self._refuse(refused, peer, station)
            return
        if station is None:
            detail = f"station address {frame.address} is not in the registry"
            refused = Refused(FrameProblem.UNKNOWN_ADDRESS, detail, frame.raw, frame.address)
            await self._refuse(refused, peer)
            return
        report = decode(frame)
        if isinstance(report, Refused):
            await self._refuse(report, peer, station)
            return
        self.stats.reports += 1
        readings, skipped = readings_of(report, station, self._counters)
        self.stats.skipped.update(skipped)
        if readings:
            payload = json.dumps({"readings": readings}, separators=(",", ":")).encode()
            try:
                await self._publisher.publish(self._readings_topic, payload)
            except BrokerUnavailable as exc:
                self.stats.unanswered += 1
                log.warning(
                    "station=%s peer=%s not answered (it will resend): %s", station, peer, exc
                )
                return
            self.stats.readings += len(readings)
        if frame.function != LINK_KEEPING:
            writer.write(encode_reply(frame, self._clock(), self._answer_end))
            await writer.drain()
            self.stats.answered += 1

    async def _refuse(self, refused: Refused, peer: str, station: str | None = None) -> None:
        self.stats.refused[refused.problem.value] += 1
        shown = refused.raw[:_HEX_IN_LOG].hex().upper()
        log.warning(
            "refused frame station=%s peer=%s %s; %d bytes: %s%s",
            station or refused.address,
            peer,
            refused.reason,
            len(refused.raw),
            shown,
            "…" if len(refused.raw) > _HEX_IN_LOG else "",
        )
        payload = {
            "reason": f"sl651 {refused.reason}",
            "raw_hex": refused.raw.hex().upper(),
            "peer": peer,
            "station": station,
        }
        try:
            await self._publisher.publish(self._rejects_topic, json.dumps(payload).encode())
        except BrokerUnavailable as exc:
            log.warning("refused frame from peer=%s not quarantined: %s", peer, exc)

    def _log_progress(self) -> None:
        log.info("sl651: %s", self.stats)


def _peer(writer: asyncio.StreamWriter) -> str:
    name = writer.get_extra_info("peername")
    if isinstance(name, tuple) and len(name) >= 2:
        return f"{name[0]}:{name[1]}"
    return str(name)
