"""Helpers the ingest tests share: stations, a config for the local services, a publisher."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import psycopg
import yaml
from psycopg_pool import AsyncConnectionPool

from hydro import app
from hydro.api import create_api, serve
from hydro.api.context import ApiContext
from hydro.config import Config, DatabaseConfig
from hydro.local import LocalMosquitto
from hydro.models import STATION_ROLES, Recipient, Station, StationKind
from hydro.store.db import open_pool
from hydro.store.schema import migrate

REPO = Path(__file__).resolve().parent.parent
# The sample registry's 禾丰水文站 (贵阳市 开阳县), a river: warning 908.50, guaranteed 910.00.
HEFENG = "61901002"
HEFENG_GATEWAY = "gw-1-001"

_test_start = [dt.datetime.now(dt.UTC)]


def mark_test_start() -> None:
    """Called for every test (conftest): the minute it starts."""
    _test_start[0] = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)


def minutes_ago_at_start(minutes: float) -> dt.datetime:
    """A time relative to the running test's start, not to the module's import: a hydro process
    judges readings against the wall clock, and a test late in a long suite would otherwise
    send 'recent' readings that are minutes older than it says (a silent station)."""
    return _test_start[0] - dt.timedelta(minutes=minutes)


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
            Recipient(role, f"{role.value}-person", f"+861380000{i:04d}")
            for i, role in enumerate(STATION_ROLES)
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


# Runs a coroutine function with the served API's pool, in the API's loop; its result.
InApiLoop = Callable[[Callable[[AsyncConnectionPool], Awaitable[Any]]], Any]


@contextlib.contextmanager
def api_in_thread(
    config: Config,
    listener: socket.socket,
    prepare: Callable[[AsyncConnectionPool], Awaitable[None]] | None = None,
    *,
    ready_within: float = 60,
) -> Iterator[InApiLoop]:
    """The API of ``config`` served on ``listener`` in a thread and loop of its own, on the
    migrated database, once ``prepare`` has run with its pool (within ``ready_within``
    seconds: a benchmark loads millions of rows there)."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()
    holder: dict[str, AsyncConnectionPool] = {}

    async def main() -> None:
        registry, rules = app.load_stations(config), app.load_alert_rules(config)
        async with open_pool(config.database) as pool:
            async with pool.connection() as conn:
                await migrate(conn, config.database, "Asia/Shanghai")
            if prepare is not None:
                await prepare(pool)
            holder["pool"] = pool
            ready.set()
            roster = app.load_duty_roster(config)
            context = app.api_context(config, pool, registry, rules, roster)
            await serve(create_api(context), listener, stop)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),))
    thread.start()
    try:
        deadline = time.monotonic() + ready_within
        while not ready.wait(1):  # a migration or prepare that raised ends the thread
            assert thread.is_alive(), "the API stopped before it was ready"
            assert time.monotonic() < deadline, "the API did not start"

        def run(body: Callable[[AsyncConnectionPool], Awaitable[Any]]) -> Any:
            return asyncio.run_coroutine_threadsafe(body(holder["pool"]), loop).result(60)

        yield run
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


@contextlib.asynccontextmanager
async def api_client(
    config: Config, headers: Mapping[str, str] | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, ApiContext]]:
    """A client of the API of ``config`` in this loop, on the migrated database, and the
    API's context (its pool, registry, roster)."""
    registry, rules = app.load_stations(config), app.load_alert_rules(config)
    async with open_pool(config.database) as pool:
        async with pool.connection() as conn:
            await migrate(conn, config.database, "Asia/Shanghai")
        context = app.api_context(config, pool, registry, rules, app.load_duty_roster(config))
        transport = httpx.ASGITransport(app=create_api(context))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://hydro", headers=headers
        ) as client:
            yield client, context


def reading(code: str, time_: str, **values: float) -> dict[str, Any]:
    return {"station": code, "time": time_, **values}


@contextlib.asynccontextmanager
async def publisher(port: int, client_id: str = "test-gateway") -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client("127.0.0.1", port, identifier=client_id) as client:
        yield client


async def publish_json(client: aiomqtt.Client, topic: str, payload: object) -> None:
    await client.publish(topic, json.dumps(payload, ensure_ascii=False).encode(), qos=1)


def publish_levels(
    broker: LocalMosquitto,
    topic_prefix: str,
    *levels: tuple[int, float],
    station: str = HEFENG,
    gateway: str = HEFENG_GATEWAY,
    client: str = "gw",
) -> None:
    """Water levels (minutes ago, metres) in one message from the station's gateway."""

    async def go() -> None:
        async with publisher(broker.port, f"{client}-{topic_prefix}") as gw:
            await publish_json(
                gw,
                f"{topic_prefix}/{gateway}/readings",
                {
                    "readings": [
                        reading(station, minutes_ago_at_start(m).isoformat(), water_level=v)
                        for m, v in levels
                    ]
                },
            )

    asyncio.run(go())


def count_rows(pg_url: str, query: str = "SELECT count(*) FROM readings") -> int:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute(query).fetchone()  # type: ignore[arg-type]
    return int(row[0]) if row else 0


def fetch(pg_url: str, query: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        # No parameters: no placeholders either, so a LIKE '%...' is taken as written.
        return conn.execute(query, params or None).fetchall()  # type: ignore[arg-type]


def execute(pg_url: str, statement: str, params: tuple[object, ...] = ()) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(statement, params or None)  # type: ignore[arg-type]


def migrated(pg_url: str) -> None:
    """The test database migrated as ``hydro run`` would (the sample registry's zone)."""

    async def main() -> None:
        config = DatabaseConfig(url=pg_url, timescaledb="off")
        async with open_pool(config) as pool, pool.connection() as conn:
            await migrate(conn, config, "Asia/Shanghai")

    asyncio.run(main())


def open_alert(
    pg_url: str,
    station: str,
    *,
    family: str,
    rule_id: str,
    rank: int,
    severity: str,
    opened_at: dt.datetime | None = None,
    sms: tuple[str, str, str, str] | None = None,
) -> int:
    """An open alert as the evaluator stores it (opened now unless ``opened_at``), with the SMS
    it sent, (role, person, phone, body), when given."""
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "INSERT INTO alerts (station, family, rule_id, rank, severity, state, opened_at)"
            " VALUES (%s, %s, %s, %s, %s, 'open', coalesce(%s::timestamptz, now())) RETURNING id",
            (station, family, rule_id, rank, severity, opened_at),
        ).fetchone()
        assert row is not None
        if sms is not None:
            conn.execute(
                "INSERT INTO outbox (alert_id, station, role, person, phone, body)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (row[0], station, *sms),
            )
    return int(row[0])


async def wait_until(
    condition: Callable[[], bool], *, seconds: float = 20.0, what: str = "condition"
) -> None:
    """Polls ``condition`` (a quick blocking query is fine) until true, or fails the test."""
    deadline = time.monotonic() + seconds
    while not await asyncio.to_thread(condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(0.05)


def write_config(
    path: Path, pg_url: str, broker_port: int, topic_prefix: str, **sections: Mapping[str, Any]
) -> Path:
    """A config file for ``hydro run`` on the local services with the repository's registry;
    ``sections`` add to or override its sections."""
    repo = Path(__file__).resolve().parent.parent
    data: dict[str, Any] = {
        "mqtt": {
            "port": broker_port,
            "topic_prefix": topic_prefix,
            "client_id": f"run-{topic_prefix}",
        },
        "database": {"url": pg_url, "timescaledb": "off", "connect_timeout": "2s"},
        "ingest": {"batch_interval": "50ms"},
        "registry": {"stations": str(repo / "stations")},
        "alerting": {"rules": str(repo / "alert_rules"), "interval": "1s"},
        "api": {"port": 0},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def start_hydro(
    command: str, config: Path, log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``hydro --config CONFIG COMMAND`` writing to ``log``; returns once it has subscribed."""
    before = log.read_text(errors="replace").count("subscribed to") if log.exists() else 0
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "hydro", "--config", str(config), command],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    deadline = time.monotonic() + 30
    while log.read_text(errors="replace").count("subscribed to") <= before:
        assert process.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.05)
    return process


def readings_payload(codes: Iterable[str], times: Iterable[str], level: float) -> dict[str, Any]:
    return {"readings": [reading(code, t, water_level=level) for code in codes for t in times]}


async def _waiting_out_refreshes(
    conn: psycopg.AsyncConnection[Any], statement: str, params: tuple[object, ...]
) -> None:
    """TimescaleDB refuses a refresh while another one (its scheduler's policy run) holds an
    overlapping window: wait for it rather than fail."""
    for _ in range(300):
        try:
            await conn.execute(statement, params)
            return
        except psycopg.errors.LockNotAvailable:
            await asyncio.sleep(0.1)
    raise AssertionError(f"{statement} {params}: stayed locked by a concurrent refresh")


async def refresh(pool: AsyncConnectionPool, view: str) -> None:
    """Materialises all of ``view``."""
    async with await psycopg.AsyncConnection.connect(pool.conninfo, autocommit=True) as conn:
        await _waiting_out_refreshes(
            conn, "CALL refresh_continuous_aggregate(%s, NULL, NULL)", (view,)
        )


async def run_refresh_policies(pool: AsyncConnectionPool) -> None:
    """Runs the continuous aggregates' refresh policies now, as TimescaleDB's scheduler would."""
    async with await psycopg.AsyncConnection.connect(pool.conninfo, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT job_id FROM timescaledb_information.jobs"
            " WHERE proc_name = 'policy_refresh_continuous_aggregate' ORDER BY job_id"
        )
        for (job,) in await cur.fetchall():
            await _waiting_out_refreshes(conn, "CALL run_job(%s)", (job,))
