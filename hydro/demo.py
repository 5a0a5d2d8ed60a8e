"""``hydro demo``: hydro's whole job on one machine, with everything it needs started beside it.

A throw-away PostgreSQL and Mosquitto in a work folder, hydro itself (ingest, evaluation, SMS to
the console, the API and web page) and the simulator playing a storm over the registry: rain
builds, rivers and reservoirs rise past their levels (a reservoir whose spillway gate jams past
its 设计洪水位: a red warning whose persons are called), the gauge that rises furthest goes
silent at its peak, levels fall and alerts clear. Ctrl-C stops everything it started and keeps
the data (and how far the storm got) for ``hydro demo --resume``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from hydro import app
from hydro.app import run_everything, run_simulation, stop_on_signals
from hydro.config import Config, DutyConfig
from hydro.errors import ConfigError, HydroError, Problem
from hydro.local import LocalMosquitto, LocalPostgres, free_port
from hydro.logs import configure_logging
from hydro.models import Channel
from hydro.simulate import REPORT_INTERVAL, PublishProgress, SimulationPlan, simulation_start
from hydro.store.status import newest_observation

STATE_FILE = "demo.json"  # the storm's plan and progress, and the web page's token
_PROGRESS_EVERY = 15.0  # seconds between progress lines in the console


def run_demo(
    config: Config, workdir: Path, plan: SimulationPlan, *, reset: bool, resume: bool, port: int
) -> None:
    """Runs until Ctrl-C (SIGINT) or SIGTERM; the servers stop on the way out, the data stays."""
    state_file = workdir / STATE_FILE
    if reset and workdir.exists():
        shutil.rmtree(workdir)
    if resume:
        if not state_file.is_file():
            raise ConfigError([Problem(str(workdir), "holds no demo to resume: run hydro demo")])
        state = json.loads(state_file.read_text(encoding="utf-8"))
        plan = dataclasses.replace(
            plan,
            steps=state["steps"],
            storm=state["storm"],
            seed=state["seed"],
            stations=state["stations"],
            start=dt.datetime.fromisoformat(state["start"]),
            done=state["done"],
            silent_gauge=True,
            overtop=True,
        )
        token = str(state["token"])
    else:
        if (workdir / "postgres").exists():
            raise ConfigError(
                [
                    Problem(
                        str(workdir),
                        "holds an earlier demo: hydro demo --resume continues it,"
                        " hydro demo --reset starts clean",
                    )
                ]
            )
        plan = dataclasses.replace(
            plan, start=simulation_start(plan), silent_gauge=True, overtop=True
        )
        token = secrets.token_urlsafe(18)
    asyncio.run(_demo(config, workdir, plan, token, port))


async def _demo(config: Config, workdir: Path, plan: SimulationPlan, token: str, port: int) -> None:
    postgres = LocalPostgres(workdir / "postgres")
    broker = LocalMosquitto(workdir / "mosquitto")
    await asyncio.to_thread(postgres.start)
    try:
        await asyncio.to_thread(broker.start)
        try:
            if not await asyncio.to_thread(postgres.database_exists, "hydro"):
                await asyncio.to_thread(postgres.create_database, "hydro")
            demo = _demo_config(config, postgres, broker, plan, token, port)
            await _run(demo, workdir, plan, token)
        finally:
            await asyncio.to_thread(broker.stop)
    finally:
        await asyncio.to_thread(postgres.stop)
    print("hydro demo stopped; hydro demo --resume continues it.", flush=True)


def _demo_duty(config: Config) -> DutyConfig:
    """Without a roster of its own, the demo shows the hand-over of the repository's weekly
    sample (``duty/roster.csv`` beside the ``stations`` folder), when there is one."""
    sample = config.registry.stations.parent / "duty" / "roster.csv"
    if config.duty.roster is None and sample.is_file():
        return DutyConfig(roster=sample)
    return config.duty


def _demo_config(  # noqa: PLR0917 - the servers it started and what it chose
    config: Config,
    postgres: LocalPostgres,
    broker: LocalMosquitto,
    plan: SimulationPlan,
    token: str,
    port: int,
) -> Config:
    api_port = port if _port_free(port) else free_port()
    return config.model_copy(
        update={
            "database": config.database.model_copy(update={"url": postgres.url("hydro")}),
            "mqtt": config.mqtt.model_copy(update={"port": broker.port, "host": "127.0.0.1"}),
            # A tick every second: ten simulated minutes at the default speed.
            "alerting": config.alerting.model_copy(update={"interval": dt.timedelta(seconds=1)}),
            # The console has no carrier to pace for: print every SMS as soon as it is due.
            "sms": config.sms.model_copy(
                update={"provider": "console", "rate_per_second": 1000.0, "concurrency": 16}
            ),
            # Calls too; the simulated people answer the first call of every other alert, so
            # the demo shows confirmations by key press and ladders that climb.
            "voice": config.voice.model_copy(
                update={"calls_per_second": 1000.0, "console_answers": "odd_alerts"}
            ),
            "api": config.api.model_copy(
                update={
                    "enabled": True,
                    "host": "127.0.0.1",
                    "port": api_port,
                    "tokens": SecretStr(f"demo:operator:{token}"),
                }
            ),
            "duty": _demo_duty(config),
            # The SMS feed is the show: only warnings and errors join it.
            "logging": config.logging.model_copy(update={"level": "WARNING"}),
        }
    )


async def _run(config: Config, workdir: Path, plan: SimulationPlan, token: str) -> None:
    configure_logging(config.logging)
    _print_tour(config, plan, token)
    stop = stop_on_signals()
    subscribed = asyncio.Event()
    progress = PublishProgress()
    assert plan.start is not None
    storm_time = [plan.start + plan.done * REPORT_INTERVAL]
    clock = asyncio.create_task(_follow_the_storm(config, storm_time))
    ingest = asyncio.create_task(
        run_everything(config, stop, subscribed, clock=lambda: storm_time[0])
    )
    # Gateways may publish only once the broker keeps a session for hydro.
    ready = asyncio.create_task(subscribed.wait())
    await asyncio.wait({ingest, ready}, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if ingest.done():
        await ingest  # it failed to start: say why
        return
    config, plan, receiver = await _start_sl651_receiver(config, plan, stop)
    simulation = asyncio.create_task(run_simulation(config, plan, progress))
    reporter = asyncio.create_task(_report(config, plan, progress))
    try:
        done, _ = await asyncio.wait({ingest, simulation}, return_when=asyncio.FIRST_COMPLETED)
        if simulation in done and not stop.is_set():
            simulation.result()
            reporter.cancel()
            await _print_progress(config, plan, progress, finished=True)
        await ingest
    finally:
        stop.set()
        reporter.cancel()
        clock.cancel()
        if receiver is not None:
            await asyncio.gather(receiver, return_exceptions=True)
        completed = (
            simulation.done() and not simulation.cancelled() and simulation.exception() is None
        )
        if not simulation.done():
            simulation.cancel()
        # An interrupted step may be half-published: the next run sends it again, and hydro
        # keeps one copy of a reading it receives twice.
        settled = progress.steps_done
        published = settled if completed else max(settled - 1, 0)
        _save_state(workdir, plan, token, plan.done + published)


async def _start_sl651_receiver(
    config: Config, plan: SimulationPlan, stop: asyncio.Event
) -> tuple[Config, SimulationPlan, asyncio.Task[object] | None]:
    """The registry's first gateway becomes an SL 651 receiver: its stations report as RTUs
    over TCP, through ``hydro gateway sl651``, as real stations in the province do."""
    gateway = next((s.gateway for s in app.load_stations(config).stations if s.gateway), None)
    if gateway is None:
        return config, plan, None
    settings = config.sl651.model_copy(
        update={"host": "127.0.0.1", "port": 0, "gateway": gateway, "client_id": "hydro-demo-sl651"}
    )
    config = config.model_copy(update={"sl651": settings})
    bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    receiver: asyncio.Task[object] = asyncio.create_task(
        app.run_sl651_gateway(config, stop, bound.set_result)
    )
    either: set[asyncio.Future[Any]] = {receiver, bound}
    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    if not bound.done():
        await receiver  # it failed to start: say why
    settings = settings.model_copy(update={"port": bound.result()})
    print(
        f"   SL 651:   the stations of gateway {gateway} report as RTUs over TCP to"
        f" hydro gateway sl651 on 127.0.0.1:{settings.port}",
        flush=True,
    )
    return (
        config.model_copy(update={"sl651": settings}),
        dataclasses.replace(plan, sl651_gateway=gateway),
        receiver,
    )


async def _follow_the_storm(config: Config, storm_time: list[dt.datetime]) -> None:
    """Alerting runs on the storm's time, the newest report hydro has stored: a gauge is silent
    when it is 15 simulated minutes behind the others, whatever the speed of the replay."""
    async with app.database(config) as pool:
        while True:
            with contextlib.suppress(HydroError):
                newest = await newest_observation(pool)
                if newest is not None:
                    storm_time[0] = max(storm_time[0], newest)
            await asyncio.sleep(0.2)


async def _report(config: Config, plan: SimulationPlan, progress: PublishProgress) -> None:
    while True:
        await asyncio.sleep(_PROGRESS_EVERY)
        await _print_progress(config, plan, progress, finished=False)


async def _print_progress(
    config: Config, plan: SimulationPlan, progress: PublishProgress, *, finished: bool
) -> None:
    try:
        status = await app.status(config)
    except HydroError:
        return
    step = plan.done + progress.steps
    assert plan.start is not None
    local = (plan.start + step * REPORT_INTERVAL).astimezone(dt.timezone(dt.timedelta(hours=8)))
    sms = sum(status.outbox[Channel.SMS].values())
    calls = sum(status.outbox[Channel.VOICE].values())
    head = "storm over" if finished else f"storm at {local:%m-%d %H:%M}"
    print(
        f"-- {head} (report {step}/{plan.steps}): {progress.readings:,} readings published,"
        f" {status.open_alerts} alerts open, {sms} SMS, {calls} calls"
        + (f"; the web page stays up. Ctrl-C to stop.{_web_line(config)}" if finished else ""),
        flush=True,
    )


def _save_state(workdir: Path, plan: SimulationPlan, token: str, done: int) -> None:
    assert plan.start is not None
    state = {
        "steps": plan.steps,
        "storm": plan.storm,
        "seed": plan.seed,
        "stations": plan.stations,
        "start": plan.start.isoformat(),
        "done": done,
        "token": token,
    }
    (workdir / STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _web_line(config: Config) -> str:
    tokens = config.api.token_table()
    return f"\n   web page: http://127.0.0.1:{config.api.port}/#token={tokens[0].token.get_secret_value()}"


def _print_tour(config: Config, plan: SimulationPlan, token: str) -> None:
    remaining = (plan.steps - plan.done) * REPORT_INTERVAL
    lasts = remaining.total_seconds() / plan.speed if plan.speed else 0.0
    url = f"http://127.0.0.1:{config.api.port}"
    print(
        (
            f"hydro demo: {remaining.total_seconds() / 3600:g} hours of a storm over"
            f" {config.registry.stations}, reported every 5 minutes"
            + (f", played in {time.strftime('%M:%S', time.gmtime(lasts))}" if lasts else "")
            + (f", resumed at report {plan.done + 1}" if plan.done else "")
            if remaining
            else "hydro demo: this storm is over; its data, alerts and SMS are served below"
        )
        + ".\n"
        f"   web page: {url}/#token={token}\n"
        f"   API:      curl -H 'Authorization: Bearer {token}' {url}/api/v1/summary\n"
        f"   CLI:      export HYDRO_DATABASE__URL={config.database.url}"
        f" HYDRO_MQTT__PORT={config.mqtt.port}\n"
        "             hydro alerts list --active; hydro outbox list; hydro status\n"
        "Watch: rain builds over a few prefectures, rivers and reservoirs rise, and as each\n"
        "crosses a level its three responsible persons get an SMS (printed below as sent);\n"
        "the gauge that rises furthest goes silent at its peak, levels fall, alerts clear.\n"
        "叫应: orange and red alerts call their persons (CALL lines); a reservoir's spillway\n"
        "gate jams and it passes its 设计洪水位 (red: all three persons called). The first call\n"
        "of each alert with an odd id is answered with 1 (a confirmation by key press); the\n"
        "others ring out (no-answer), and after 10 storm minutes their ladders climb to the\n"
        "county's 防汛负责人 (a CALL and an SMS starting 【无人叫应】), then the duty officers.\n"
        "hydro alerts show ID, and the web page's alert dialog, show each ladder.\n"
        "Ctrl-C stops everything; hydro demo --resume continues, --reset starts clean.\n",
        flush=True,
    )
