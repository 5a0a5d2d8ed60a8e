"""Publishing simulated reports the way gateways do: per gateway, batched, QoS 1, paced.

The contract hydro ingests: topic ``<prefix>/<gateway>/readings``, QoS 1, a UTF-8 JSON payload
``{"readings": [{"station": "61901002", "time": "2026-05-07T08:00:00+08:00", "water_level":
771.54, "battery_v": 12.6}, ...]}``, the time in the station's own UTC offset. A station whose
registry row names a gateway must come on that gateway's topic or hydro refuses it; stations
without one are shared out among simulated gateways, :data:`SIMULATED_GATEWAY_SIZE` each.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from math import isnan
from typing import Any, NamedTuple

import aiomqtt

from hydro.broker import connection_options
from hydro.config import MqttConfig
from hydro.errors import BrokerUnavailable
from hydro.models import Station
from hydro.simulate.model import Step, StepSource

log = logging.getLogger(__name__)

SIMULATED_GATEWAY_SIZE = 50  # stations per simulated gateway, as a real gateway might serve
_FIELDS = ("water_level", "flow", "rainfall", "battery_v")


class Message(NamedTuple):
    """One MQTT message; ``readings`` counts the readings in its payload, for progress."""

    topic: str
    payload: bytes
    readings: int


class PayloadEncoder:
    """Turns a :class:`Step` into gateway messages of at most ``batch`` readings.

    Everything that is the same at every step (each station's topic, the JSON text before its
    time, which stations share a message) is prepared once here; a step then costs one float
    repr per value and string joins, about 1.5 µs per reading (json.dumps of dicts: 9 µs), so
    the encoder never limits a publisher. NaN in a step means "not measured": no field.
    """

    def __init__(self, stations: Sequence[Station], *, topic_prefix: str, batch: int) -> None:
        if batch < 1:
            raise ValueError(f"batch must be at least 1, not {batch}")
        zones = sorted({s.timezone for s in stations})
        self._zones = [next(s.tz for s in stations if s.timezone == z) for z in zones]
        self._zone_of = [zones.index(s.timezone) for s in stations]
        self._heads = [
            '{"station":' + json.dumps(s.code, ensure_ascii=False) + ',"time":"' for s in stations
        ]
        by_gateway: dict[str, list[int]] = {}
        for index, gateway in enumerate(gateways(stations)):
            by_gateway.setdefault(gateway, []).append(index)
        self._chunks = [
            (f"{topic_prefix}/{gateway}/readings", members[first : first + batch])
            for gateway, members in by_gateway.items()
            for first in range(0, len(members), batch)
        ]

    def encode(self, step: Step) -> list[Message]:
        times = [step.time.astimezone(zone).isoformat() for zone in self._zones]
        fields = [
            [f',"{name}":{value!r}' if not isnan(value) else "" for value in column.tolist()]
            for name, column in zip(
                _FIELDS, (step.water_level, step.flow, step.rainfall, step.battery_v), strict=True
            )
        ]
        objects = [
            f'{head}{times[zone]}"{a}{b}{c}{d}}}'
            for head, zone, a, b, c, d in zip(self._heads, self._zone_of, *fields, strict=True)
        ]
        silent = step.silent.tolist()
        messages = []
        for topic, members in self._chunks:
            reporting = [objects[i] for i in members if not silent[i]]
            if reporting:
                payload = '{"readings":[' + ",".join(reporting) + "]}"
                messages.append(Message(topic, payload.encode(), len(reporting)))
        return messages


def gateways(stations: Sequence[Station]) -> list[str]:
    """Each station's gateway: its own, else ``sim-0001``, ``sim-0002``... in registry order."""
    unassigned = 0
    names = []
    for station in stations:
        if station.gateway is not None:
            names.append(station.gateway)
        else:
            names.append(f"sim-{unassigned // SIMULATED_GATEWAY_SIZE + 1:04d}")
            unassigned += 1
    return names


@dataclass
class PublishProgress:
    """What has been handed to the broker so far; when returned, all of it is acknowledged."""

    steps: int = 0
    messages: int = 0
    readings: int = 0
    seconds: float = 0.0
    other_steps: int | None = None  # steps a second sender beside this one (SL 651 RTUs) has done

    @property
    def steps_done(self) -> int:
        """Steps every sender has completed: where a resumed run must start."""
        return self.steps if self.other_steps is None else min(self.steps, self.other_steps)

    @property
    def rate(self) -> float:
        """Readings per second, over the whole run."""
        return self.readings / self.seconds if self.seconds > 0 else 0.0


async def publish_storm(
    config: MqttConfig,
    stations: Sequence[Station],
    model: StepSource,
    *,
    steps: int,
    speed: float,
    batch: int,
    window: int = 64,
    report_every: float = 5.0,
    progress: PublishProgress | None = None,
) -> PublishProgress:
    """Publishes ``steps`` reports of ``model`` (built on the same ``stations``) at QoS 1.

    ``speed`` simulated seconds pass per real second; 0 publishes as fast as the broker takes
    it. Up to ``window`` messages are unacknowledged at once: waiting for each PUBACK would cap
    a publisher at one message per round trip. Progress goes to the log every ``report_every``
    seconds. Returns once every message has been acknowledged; a ``progress`` passed in is
    kept up to date as it goes, so a caller that cancels knows how far it got.
    """
    if speed < 0:
        raise ValueError(f"speed must be 0 or more, not {speed}")
    encoder = PayloadEncoder(stations, topic_prefix=config.topic_prefix, batch=batch)
    pause = model.interval.total_seconds() / speed if speed > 0 else 0.0
    progress = progress or PublishProgress()
    started = time.monotonic()
    reported_at, reported = started, 0
    try:
        async with _client(config, window) as client:
            pending = _Window(window)
            try:
                for index in range(steps):
                    if pause:
                        await asyncio.sleep(max(0.0, started + index * pause - time.monotonic()))
                    step = model.step()
                    for message in encoder.encode(step):
                        await pending.add(client.publish(message.topic, message.payload, qos=1))
                        progress.messages += 1
                        progress.readings += message.readings
                    progress.steps += 1
                    now = time.monotonic()
                    if now - reported_at >= report_every:
                        log.info(
                            "simulator: step %d/%d (%s): %d messages, %d readings, %.0f readings/s",
                            progress.steps,
                            steps,
                            step.time.isoformat(),
                            progress.messages,
                            progress.readings,
                            (progress.readings - reported) / (now - reported_at),
                        )
                        reported_at, reported = now, progress.readings
                await pending.drain()
            finally:
                await pending.cancel()
    except aiomqtt.MqttError as exc:
        raise BrokerUnavailable(
            f"cannot publish to broker {config.host}:{config.port}: {exc}"
        ) from exc
    progress.seconds = time.monotonic() - started
    return progress


class _Window:
    """At most ``size`` publishes awaiting their PUBACK; the first failure is raised."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._tasks: set[asyncio.Task[None]] = set()

    async def add(self, publish: Coroutine[Any, Any, None]) -> None:
        if len(self._tasks) >= self._size:
            done, self._tasks = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
            _raise_first(done)
        self._tasks.add(asyncio.create_task(publish))

    async def drain(self) -> None:
        done, self._tasks = await asyncio.wait(self._tasks) if self._tasks else (set(), set())
        _raise_first(done)

    async def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


def _raise_first(done: set[asyncio.Task[None]]) -> None:
    errors = [error for task in done if (error := task.exception()) is not None]
    if errors:
        raise errors[0]


def _client(config: MqttConfig, window: int) -> aiomqtt.Client:
    """A clean session of its own: the broker's PUBACK is all a gateway waits for."""
    client = aiomqtt.Client(
        identifier=f"{config.client_id}-simulator-{os.getpid()}",
        max_inflight_messages=window,  # paho holds back all but 20 by default
        **connection_options(config),
    )
    client.pending_calls_threshold = window  # that many awaiting a PUBACK is the plan, not a leak
    return client
