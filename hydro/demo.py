"""``hydro demo``: hydro on local defaults, with everything it needs started beside it.

A throw-away PostgreSQL and Mosquitto in a work folder, hydro itself (ingest, evaluation, SMS to
the console) and the simulator playing a storm over the registry. Ctrl-C stops them all; the data
stays in the folder for the next run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import shutil
from pathlib import Path

from hydro.app import SimulationPlan, run_ingest, run_simulation, stop_on_signals
from hydro.config import Config
from hydro.local import LocalMosquitto, LocalPostgres
from hydro.simulate import REPORT_INTERVAL

log = logging.getLogger("hydro")


def run_demo(config: Config, workdir: Path, plan: SimulationPlan, *, reset: bool) -> None:
    """Local PostgreSQL and Mosquitto in ``workdir``, ingest and the simulator, until Ctrl-C.

    The servers stop on the way out; their data stays for the next run unless ``reset``.
    """
    if reset and workdir.exists():
        shutil.rmtree(workdir)
    asyncio.run(_demo(config, workdir, plan))


async def _demo(config: Config, workdir: Path, plan: SimulationPlan) -> None:
    postgres = LocalPostgres(workdir / "postgres")
    broker = LocalMosquitto(workdir / "mosquitto")
    await asyncio.to_thread(postgres.start)
    try:
        await asyncio.to_thread(broker.start)
        try:
            if not await asyncio.to_thread(postgres.database_exists, "hydro"):
                await asyncio.to_thread(postgres.create_database, "hydro")
            database = config.database.model_copy(update={"url": postgres.url("hydro")})
            mqtt = config.mqtt.model_copy(update={"port": broker.port, "host": "127.0.0.1"})
            # The storm is replayed from the past, faster than time passes: page for all of it.
            replayed = plan.steps * REPORT_INTERVAL + dt.timedelta(hours=1)
            alerting = config.alerting.model_copy(update={"max_age": replayed})
            demo = config.model_copy(
                update={"database": database, "mqtt": mqtt, "alerting": alerting}
            )
            _print_tour(demo)
            stop = stop_on_signals()
            subscribed = asyncio.Event()
            ingest = asyncio.create_task(run_ingest(demo, stop, subscribed, alerting=True))
            # Gateways may publish only once the broker keeps a session for hydro.
            ready = asyncio.create_task(subscribed.wait())
            await asyncio.wait({ingest, ready}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            simulation = asyncio.create_task(run_simulation(demo, plan))
            done, _ = await asyncio.wait({ingest, simulation}, return_when=asyncio.FIRST_COMPLETED)
            if simulation in done:
                progress = simulation.result()
                log.info(
                    "simulation finished: %d readings in %d messages; Ctrl-C to stop",
                    progress.readings,
                    progress.messages,
                )
            else:
                simulation.cancel()
            await ingest
        finally:
            await asyncio.to_thread(broker.stop)
    finally:
        await asyncio.to_thread(postgres.stop)


def _print_tour(config: Config) -> None:
    print(
        "hydro demo is running. In another terminal, point hydro at it:\n"
        f"  export HYDRO_DATABASE__URL={config.database.url} HYDRO_MQTT__PORT={config.mqtt.port}\n"
        "  hydro status                      # storage mode, what has been stored, open alerts\n"
        "  hydro alerts list --active        # the alerts the storm has opened\n"
        "  hydro outbox list                 # every SMS and its status\n"
        "  hydro quarantine list --since 1h  # what gateways sent that was refused\n"
        "Ctrl-C stops everything; the data stays in the work folder for the next run.",
        flush=True,
    )
