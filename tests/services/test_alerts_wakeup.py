"""Evaluation as readings arrive: ingest's commit wakes the evaluator through LISTEN/NOTIFY, and
many batches committed during an evaluation are taken together by one more."""

from __future__ import annotations

import asyncio
import datetime as dt

import psycopg
from prometheus_client import REGISTRY

from hydro import app
from hydro.local import LocalMosquitto
from hydro.models import Reading
from hydro.store.db import open_pool
from hydro.store.readings import ReadingWriter
from tests.support import REPO, count_rows, ingest_config, wait_until

BATCHES = 40


def _metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_a_burst_of_batches_is_taken_in_a_few_evaluations(
    pg_url: str, local_mosquitto: LocalMosquitto, mqtt_topic_prefix: str
) -> None:
    config = ingest_config(
        pg_url,
        local_mosquitto.port,
        mqtt_topic_prefix,
        registry={"stations": str(REPO / "stations")},
        alerting={"rules": str(REPO / "alert_rules"), "interval": "1h"},
        sms={"provider": "console"},
        api={"enabled": False},
    )
    rivers = [s for s in app.load_stations(config).stations if s.warning_level is not None]
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    crossings = [  # one reading a batch, every river above its warning level
        Reading(s.code, start + dt.timedelta(seconds=i), water_level=s.warning_level + 0.5)  # type: ignore[operator]
        for i, s in enumerate(rivers[i % len(rivers)] for i in range(BATCHES))
    ]
    evaluations = _metric("hydro_evaluation_seconds_count")
    wakeups = _metric("hydro_evaluation_wakeups_total")

    async def main() -> None:
        stop = asyncio.Event()
        hydro = asyncio.create_task(app.run_everything(config, stop))
        try:
            await wait_until(lambda: _listening(pg_url), what="the evaluator's listener")
            async with open_pool(config.database) as pool:
                writer = ReadingWriter(pool)  # another ingest process, as far as hydro knows
                with psycopg.connect(pg_url) as blocker:
                    # Evaluations wait for this lock: every batch below commits during one.
                    # Taken off the event loop: it waits for hydro's own transactions on
                    # alerts (the 叫应 ladder's run at start), which need the loop to end.
                    await asyncio.to_thread(
                        blocker.execute, "LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE"
                    )
                    for crossing in crossings:
                        await writer.write([crossing])
                    await wait_until(
                        lambda: _metric("hydro_evaluation_wakeups_total") >= wakeups + BATCHES,
                        what="every batch's wake-up",
                    )
                    blocker.commit()
            await wait_until(
                lambda: count_rows(pg_url, "SELECT count(*) FROM alerts") == len(rivers),
                what="an alert for every crossing",
            )
        finally:
            stop.set()
            await hydro

    asyncio.run(main())
    # The tick at start, the wake-up as the listener connects, the run the lock held up and
    # the one more all the batches' wake-ups asked for: at most four, whatever BATCHES is.
    assert _metric("hydro_evaluation_seconds_count") - evaluations <= 4


def _listening(pg_url: str) -> bool:
    query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'hydro-wakeup'"
    return count_rows(pg_url, query) == 1
