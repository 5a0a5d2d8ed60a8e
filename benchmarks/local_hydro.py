"""``hydro run`` as its own process on a throw-away PostgreSQL and Mosquitto, sending through the
test suite's Twilio-compatible server: what the end-to-end notification benchmarks measure."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from hydro.local import LocalMosquitto, LocalPostgres
from hydro.models import Station
from hydro.stations import write_stations_csv
from tests.twilio_server import FakeTwilio

REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def hydro_running(
    stations: Sequence[Station], mode: str, fake: FakeTwilio, **sections: dict[str, Any]
) -> Iterator[int]:
    """``hydro run`` with ``stations``, the default rules, storage ``mode`` and the config's
    ``sections`` (sms: provider twilio, through ``fake``), until it subscribes and evaluates;
    the broker's port."""
    with tempfile.TemporaryDirectory(prefix="hydro-bench-") as tmp:
        folder = Path(tmp)
        write_stations_csv(list(stations), folder / "stations.csv")
        postgres, broker = LocalPostgres(folder / "pg"), LocalMosquitto(folder / "mq")
        postgres.start()
        broker.start()
        try:
            settings: dict[str, Any] = {
                "mqtt": {"port": broker.port, "client_id": "bench"},
                "database": {"url": postgres.create_database("hydro"), "timescaledb": mode},
                "registry": {"stations": str(folder / "stations.csv")},
                "logging": {"level": "INFO"},
                **sections,
            }
            settings["alerting"] = {
                "rules": str(REPO / "alert_rules"),
                **sections.get("alerting", {}),
            }
            settings["sms"] = {"provider": "twilio", **sections.get("sms", {})}
            config = folder / "config.yaml"
            config.write_text(yaml.safe_dump(settings))
            log = folder / "hydro.log"
            with log.open("wb") as out:
                hydro = subprocess.Popen(
                    [sys.executable, "-m", "hydro", "--config", str(config), "run"],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **fake.environment()},
                )
            try:
                # Both the evaluator and the subscription: a first start has no session at the
                # broker yet, so a reading published before the subscription is not queued.
                while not all(
                    line in log.read_text(errors="replace")
                    for line in ("alerting: every", "subscribed to")
                ):
                    if hydro.poll() is not None:
                        raise SystemExit(log.read_text())
                    time.sleep(0.05)
                yield broker.port
            finally:
                hydro.terminate()
                hydro.wait(30)
        finally:
            broker.stop()
            postgres.stop()
