"""Publishing simulated reports the way gateways do: per gateway, batched, QoS 1, paced."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiomqtt

from hydro.config import MqttConfig
from hydro.models import Station
from hydro.simulate.model import REPORT_INTERVAL, Step, StormModel

log = logging.getLogger(__name__)

_FIELDS = ("water_level", "flow", "rainfall", "battery_v")


def step_messages(
    stations: Sequence[Station], step: Step, *, topic_prefix: str, batch: int
) -> list[tuple[str, bytes]]:
    """The (topic, payload) pairs for one step: each station on its own gateway's topic, at most
    ``batch`` readings per message. Stations without a gateway share a ``sim`` gateway."""
    by_gateway: dict[str, list[dict[str, object]]] = {}
    columns = [getattr(step, name) for name in _FIELDS]
    for index, station in enumerate(stations):
        reading: dict[str, object] = {
            "station": station.code,
            "time": step.time.astimezone(station.tz).isoformat(),
        }
        for name, column in zip(_FIELDS, columns, strict=True):
            value = float(column[index])
            if not math.isnan(value):
                reading[name] = value
        by_gateway.setdefault(station.gateway or "sim", []).append(reading)
    messages = []
    for gateway, readings in by_gateway.items():
        topic = f"{topic_prefix}/{gateway}/readings"
        for first in range(0, len(readings), batch):
            chunk = readings[first : first + batch]
            payload = json.dumps({"readings": chunk}, ensure_ascii=False, separators=(",", ":"))
            messages.append((topic, payload.encode()))
    return messages


@dataclass
class PublishProgress:
    steps: int = 0
    messages: int = 0
    readings: int = 0


async def publish_storm(
    config: MqttConfig,
    stations: Sequence[Station],
    model: StormModel,
    *,
    steps: int,
    speed: float,
    batch: int,
    progress: PublishProgress | None = None,
) -> PublishProgress:
    """Publishes ``steps`` reports; ``speed`` simulated seconds pass per real second (0: no
    pacing). Waits for every PUBACK, so what returns has reached the broker."""
    progress = progress or PublishProgress()
    pause = REPORT_INTERVAL.total_seconds() / speed if speed > 0 else 0.0
    last_report = time.monotonic()
    async with aiomqtt.Client(
        config.host,
        config.port,
        identifier=f"{config.client_id}-simulator",
        username=config.username,
        password=config.password.get_secret_value() if config.password else None,
    ) as client:
        client.pending_calls_threshold = 1000
        for _ in range(steps):
            began = time.monotonic()
            step = model.step()
            messages = step_messages(stations, step, topic_prefix=config.topic_prefix, batch=batch)
            await asyncio.gather(*(client.publish(t, p, qos=1) for t, p in messages))
            progress.steps += 1
            progress.messages += len(messages)
            progress.readings += len(stations)
            if time.monotonic() - last_report >= 5:
                last_report = time.monotonic()
                log.info(
                    "simulator: step %d/%d (%s), %d messages, %d readings",
                    progress.steps,
                    steps,
                    step.time.isoformat(),
                    progress.messages,
                    progress.readings,
                )
            await asyncio.sleep(max(0.0, pause - (time.monotonic() - began)))
    return progress
