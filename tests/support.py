"""Helpers the ingest tests share: stations, a config for the local services, a publisher."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

import aiomqtt
import psycopg

from hydro.config import Config
from hydro.models import ResponsiblePerson, Role, Station, StationKind


def station(
    code: str,
    *,
    gateway: str | None = "gw-1",
    kind: StationKind = StationKind.RIVER,
    timezone: str = "Asia/Shanghai",
) -> Station:
    return Station(
        code=code,
        name=f"测站{code}",
        kind=kind,
        prefecture="黔东南州",
        county="台江县",
        river="清水江",
        lat=26.67,
        lon=108.32,
        gateway=gateway,
        timezone=timezone,
        warning_level=775.0 if kind is StationKind.RIVER else None,
        guaranteed_level=777.0 if kind is StationKind.RIVER else None,
        normal_level=771.5 if kind is StationKind.RESERVOIR else None,
        persons=tuple(
            ResponsiblePerson(role, f"{role.value}-person", f"+861380000{i:04d}")
            for i, role in enumerate(Role)
        ),
    )


def stations(*codes: str, **kwargs: Any) -> dict[str, Station]:
    return {code: station(code, **kwargs) for code in codes}


def ingest_config(
    pg_url: str, broker_port: int, topic_prefix: str, **sections: Mapping[str, Any]
) -> Config:
    """A config for the local PostgreSQL and Mosquitto, quick to batch and to reconnect."""
    data: dict[str, Any] = {
        "mqtt": {
            "port": broker_port,
            "topic_prefix": topic_prefix,
            "client_id": f"ingest-{topic_prefix}",
            "reconnect_min": "100ms",
            "reconnect_max": "1s",
        },
        "database": {"url": pg_url, "timescaledb": "off", "connect_timeout": "2s"},
        "ingest": {"batch_interval": "50ms"},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return Config.model_validate(data)


def reading(code: str, time_: str, **values: float) -> dict[str, Any]:
    return {"station": code, "time": time_, **values}


@contextlib.asynccontextmanager
async def publisher(port: int, client_id: str = "test-gateway") -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client("127.0.0.1", port, identifier=client_id) as client:
        yield client


async def publish_json(client: aiomqtt.Client, topic: str, payload: object) -> None:
    await client.publish(topic, json.dumps(payload, ensure_ascii=False).encode(), qos=1)


def count_rows(pg_url: str, query: str = "SELECT count(*) FROM readings") -> int:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute(query).fetchone()  # type: ignore[arg-type]
    return int(row[0]) if row else 0


def fetch(pg_url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


async def wait_until(
    condition: Callable[[], bool], *, seconds: float = 20.0, what: str = "condition"
) -> None:
    """Polls ``condition`` (a quick blocking query is fine) until true, or fails the test."""
    deadline = time.monotonic() + seconds
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(0.05)


def readings_payload(codes: Iterable[str], times: Iterable[str], level: float) -> dict[str, Any]:
    return {"readings": [reading(code, t, water_level=level) for code in codes for t in times]}
