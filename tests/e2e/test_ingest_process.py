"""The ``hydro`` command as operators run it: a separate process, killed without warning."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from hydro.local import LocalMosquitto
from hydro.stations import generate_stations, write_stations_csv
from tests.support import count_rows, fetch, publish_json, publisher, wait_until


def write_setup(tmp_path: Path, pg_url: str, broker_port: int, prefix: str, stations: int) -> Path:
    registry = generate_stations(stations, seed=3)
    write_stations_csv(registry, tmp_path / "stations.csv")
    config = {
        "mqtt": {
            "port": broker_port,
            "topic_prefix": prefix,
            "client_id": f"ingest-{prefix}",
            "reconnect_min": "100ms",
            "reconnect_max": "1s",
        },
        "database": {"url": pg_url, "timescaledb": "off"},
        "ingest": {"batch_size": 500, "batch_interval": "100ms"},
        "registry": {"stations": "stations.csv"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def start_ingest(config: Path, log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "hydro", "--config", str(config), "ingest"],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    handle.close()
    deadline = time.monotonic() + 30
    while "subscribed to" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"hydro ingest did not subscribe:\n{log.read_text()}")
        time.sleep(0.05)
    return process


def test_kill_9_mid_stream_loses_nothing_and_doubles_nothing(
    tmp_path: Path, pg_url: str, local_mosquitto: LocalMosquitto, mqtt_topic_prefix: str
) -> None:
    port = local_mosquitto.port
    config = write_setup(tmp_path, pg_url, port, mqtt_topic_prefix, stations=50)
    registry = generate_stations(50, seed=3)
    log = tmp_path / "ingest.log"
    start = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(days=2)
    messages = 400  # of 50 readings each: 20,000 readings
    kill_at = messages // 3

    async def publish_all(process: subprocess.Popen[bytes]) -> tuple[int, subprocess.Popen[bytes]]:
        stored_at_kill = 0
        async with publisher(port) as gw:
            for m in range(messages):
                if m == kill_at:
                    # Mid-stream for certain: some of it stored, the rest still coming.
                    await wait_until(lambda: count_rows(pg_url) > 0, what="a first batch")
                    stored_at_kill = count_rows(pg_url)
                    process.send_signal(signal.SIGKILL)
                    process.wait()
                    process = start_ingest(config, log)
                moment = (start + dt.timedelta(minutes=5 * m)).isoformat()
                by_gateway: dict[str, list[dict[str, object]]] = {}
                for s in registry:
                    by_gateway.setdefault(s.gateway or "", []).append(
                        {"station": s.code, "time": moment, "water_level": 800.0 + m / 100}
                        if s.kind.value != "rain"
                        else {"station": s.code, "time": moment, "rainfall": 0.5}
                    )
                for gateway, readings in by_gateway.items():
                    topic = f"{mqtt_topic_prefix}/{gateway}/readings"
                    await publish_json(gw, topic, {"readings": readings})
        await wait_until(
            lambda: count_rows(pg_url) == messages * len(registry),
            seconds=120,
            what="every published reading",
        )
        return stored_at_kill, process

    first = start_ingest(config, log)
    stored_at_kill, last = asyncio.run(publish_all(first))
    try:
        assert 0 < stored_at_kill < messages * len(registry)  # it really died mid-stream
        assert fetch(pg_url, "SELECT count(*), count(DISTINCT (station, time)) FROM readings") == [
            (messages * len(registry), messages * len(registry))
        ]
        # Redelivered messages carried the same values: absorbed, nothing revised.
        assert count_rows(pg_url, "SELECT count(*) FROM reading_revisions") == 0
        assert count_rows(pg_url, "SELECT count(*) FROM quarantine") == 0
    finally:
        last.send_signal(signal.SIGTERM)
        assert last.wait(30) == 0, log.read_text()
    assert "ingest: messages=" in log.read_text()  # the final progress line on a clean stop
