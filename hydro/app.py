"""The one place that builds concrete objects from configuration and runs them.

Commands (``hydro.cli``) parse arguments and print; everything they need of the pipeline comes
from here, so the wiring of pool, registry, writer and services is written once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import gc
import logging
import signal
import socket
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg_pool

from hydro import metrics
from hydro.alerts.evaluator import AlertEvaluator
from hydro.alerts.ladder_runner import LadderRunner
from hydro.alerts.wakeup import JournalListener
from hydro.api import (
    TWILIO_CALL_STATUS_PATH,
    TWILIO_GATHER_PATH,
    TWILIO_STATUS_PATH,
    ApiContext,
    create_api,
    listen,
    press_key,
    report_call_status,
    serve,
)
from hydro.broker import broker_problem
from hydro.config import Config, find_config_path, load_config
from hydro.desk.confirm import confirm_person
from hydro.desk.manual import ManualSms
from hydro.desk.recipients import Directory
from hydro.duty import DutyRoster, check_roster, load_roster
from hydro.errors import ConfigError, HydroError, Problem, RegistryError
from hydro.gateway.sl651.frame import Frame
from hydro.gateway.sl651.rtu import Rtu, timed_report
from hydro.gateway.sl651.server import MqttPublisher, Sl651Gateway, address_map, address_of
from hydro.ingest.manual import ManualReadings
from hydro.ingest.service import IngestService
from hydro.logs import configure_logging
from hydro.models import (
    AlertChangeKind,
    Confirmation,
    Notification,
    Reading,
    Recipient,
    Role,
    Station,
)
from hydro.notify.dispatcher import Dispatcher
from hydro.notify.providers import (
    CallAnswer,
    CallWebhooks,
    ConsoleProvider,
    SmsProvider,
    TwilioProvider,
)
from hydro.reports.formats import FORMATS
from hydro.reports.model import DailyReport
from hydro.reports.service import DailyReports
from hydro.rules import RuleSet, check_rules, load_rules
from hydro.rules.model import SilenceRule
from hydro.scheduling import ScheduledJobs
from hydro.simulate import (
    PublishProgress,
    SimulationPlan,
    StepSource,
    Subset,
    plan_storm,
    publish_storm,
)
from hydro.stations import (
    Registry,
    check_registry,
    load_registry,
    registry_warnings,
)
from hydro.store.alerts import (
    AlertEventRecord,
    AlertFilter,
    AlertRecord,
    acknowledge,
    alert_detail,
    list_alerts,
)
from hydro.store.db import open_pool
from hydro.store.ladder import LadderStepRecord, ladder_detail
from hydro.store.links import Links
from hydro.store.manual import ManualEntry
from hydro.store.outbox import OutboxRecord, list_outbox
from hydro.store.quarantine import QuarantineEntry, QuarantineFilter, list_quarantine
from hydro.store.readings import ReadingWriter
from hydro.store.schema import MigrationReport, migrate
from hydro.store.status import StorageStatus, storage_status
from hydro.twiml import Speech

log = logging.getLogger("hydro")


def configure(config_path: Path | None) -> Config:
    """Loads the configuration (raising ConfigError) and sets up logging from it."""
    config = load_config(find_config_path(config_path))
    configure_logging(config.logging)
    return config


@contextlib.asynccontextmanager
async def database(config: Config) -> AsyncIterator[psycopg_pool.AsyncConnectionPool]:
    async with open_pool(config.database) as pool:
        yield pool


async def migrate_database(config: Config) -> MigrationReport:
    async with database(config) as pool, pool.connection() as conn:
        return await migrate(conn, config.database, config.registry.default_timezone)


def check(config_path: Path | None) -> tuple[list[Problem], list[Problem]]:
    """Every problem in the configuration, the station registry, the alert rules and the duty
    roster, and the warnings (days of the coming week the roster does not cover)."""
    try:
        config = load_config(find_config_path(config_path))
    except ConfigError as exc:
        return list(exc.problems), []
    registry, problems = check_registry(config.registry.stations, config.registry.default_timezone)
    warnings = registry_warnings(config.registry.stations, registry)
    try:
        address_map(registry.stations)  # what would stop hydro gateway sl651 at start
    except RegistryError as exc:
        problems += list(exc.problems)
    _, rule_problems = check_rules(config.alerting.rules)
    _, roster_problems, roster_warnings = check_roster(
        config.duty.roster,
        config.registry.default_timezone,
        config.sms.duty_officers,
        today=_today(config),
    )
    return problems + rule_problems + roster_problems, warnings + roster_warnings


def load_duty_roster(config: Config) -> DutyRoster:
    """Who is on duty when; RosterError (start-up stops) on any error in the roster."""
    return load_roster(
        config.duty.roster,
        config.registry.default_timezone,
        config.sms.duty_officers,
        today=_today(config),
    )


def _today(config: Config) -> dt.date:
    return dt.datetime.now(ZoneInfo(config.registry.default_timezone)).date()


def load_alert_rules(config: Config) -> RuleSet:
    rules = load_rules(config.alerting.rules)
    log.info("alert rules: %d from %s", len(rules.rules), config.alerting.rules)
    return rules


def load_stations(config: Config) -> Registry:
    registry = load_registry(config.registry.stations, config.registry.default_timezone)
    log.info("registry: %d stations from %s", len(registry), config.registry.stations)
    return registry


async def run_ingest(
    config: Config, stop: asyncio.Event | None = None, subscribed: asyncio.Event | None = None
) -> IngestService:
    """Only ingests, until SIGINT/SIGTERM (or ``stop``); migrates the schema first, idempotently.

    ``subscribed`` is set once the broker holds our subscription: from then on nothing
    published is lost, even while hydro is down.
    """
    return await _run(config, stop, subscribed, alerting=False, clock=None)


async def run_everything(
    config: Config,
    stop: asyncio.Event | None = None,
    subscribed: asyncio.Event | None = None,
    *,
    clock: Callable[[], dt.datetime] | None = None,
) -> IngestService:
    """Ingests as ``run_ingest`` does, and alerts: the rules are evaluated as readings arrive
    (woken by the database) and every ``alerting.interval``, the dispatcher sends the outbox
    and, if ``api.enabled``, the API and web page are served. ``clock`` replaces the wall
    clock for alerting (silence, lateness): ``hydro demo`` plays a storm faster than time
    passes.
    """
    return await _run(config, stop, subscribed, alerting=True, clock=clock)


async def _run(
    config: Config,
    stop: asyncio.Event | None,
    subscribed: asyncio.Event | None,
    *,
    alerting: bool,
    clock: Callable[[], dt.datetime] | None,
) -> IngestService:
    registry = load_stations(config)
    rules = load_alert_rules(config) if alerting else None
    roster = load_duty_roster(config) if alerting else None
    stop = stop or stop_on_signals()
    async with database(config) as pool:
        async with pool.connection() as conn:
            report = await migrate(conn, config.database, config.registry.default_timezone)
        log.info("storage mode: %s", report.mode)
        writer = ReadingWriter(pool, journal=config.ingest.journal)
        service = IngestService(
            config.ingest, config.mqtt, registry.by_code, writer, database=config.database
        )
        if subscribed is not None:
            service.subscribed = subscribed
        # The registry and what was loaded at start live as long as the process: out of the
        # collector's sight, the full collections that streams of readings trigger stop walking
        # them (measured: ingest CPU per reading down by a fifth with 6,951 stations).
        gc.freeze()
        listener = (
            listen(config.api.host, config.api.port) if rules and config.api.enabled else None
        )
        jobs = (
            await _start_alerting(config, registry, rules, roster, pool, clock)
            if rules and roster
            else None
        )
        api = (
            asyncio.create_task(_serve_api(config, pool, registry, rules, roster, listener, stop))
            if rules and roster and listener
            else None
        )
        try:
            await service.run(stop)
        finally:
            stop.set()
            if api is not None:
                await api
            if jobs is not None:
                await jobs.stop()
    return service


async def run_api(config: Config, stop: asyncio.Event | None = None) -> None:
    """Only the API and web page, until SIGINT/SIGTERM (or ``stop``)."""
    registry = load_stations(config)
    rules = load_alert_rules(config)
    roster = load_duty_roster(config)
    stop = stop or stop_on_signals()
    async with database(config) as pool:
        async with pool.connection() as conn:
            await migrate(conn, config.database, config.registry.default_timezone)
        listener = listen(config.api.host, config.api.port)
        await _serve_api(config, pool, registry, rules, roster, listener, stop)


async def _serve_api(  # noqa: PLR0917 - the parts it serves, built by its callers
    config: Config,
    pool: psycopg_pool.AsyncConnectionPool,
    registry: Registry,
    rules: RuleSet,
    roster: DutyRoster,
    listener: socket.socket,
    stop: asyncio.Event,
) -> None:
    await serve(create_api(api_context(config, pool, registry, rules, roster)), listener, stop)


def api_context(
    config: Config,
    pool: psycopg_pool.AsyncConnectionPool,
    registry: Registry,
    rules: RuleSet,
    roster: DutyRoster,
) -> ApiContext:
    tokens = config.api.token_table()
    if not tokens:
        log.warning(
            "api: no tokens configured (HYDRO_API__TOKENS): only /healthz, /readyz and /metrics"
            " answer; every other request gets 401"
        )
    auth_token = config.sms.twilio_auth_token
    return ApiContext(
        pool=pool,
        registry=registry,
        tokens=tokens,
        rule_names={rule.id: rule.name for rule in rules.rules},
        silence_families=silence_families(rules),
        twilio_auth_token=auth_token.get_secret_value() if auth_token else None,
        public_url=config.api.public_url,
        roster=roster,
        broker_reachable=lambda: broker_problem(config.mqtt),
        daily_report=functools.partial(
            _formatted_report, daily_reports(config, registry, rules, roster, pool)
        ),
        enter_reading=manual_readings(config, registry, pool).enter,
        max_body_bytes=config.api.max_body_bytes,
        max_csv_rows=config.api.max_csv_rows,
        max_series_points=config.api.max_series_points,
        manual_sms=manual_sms(config, registry, rules, roster, pool),
        speech=speech(config),
        link_tries_per_minute=config.api.link_tries_per_minute,
    )


def silence_families(rules: RuleSet) -> frozenset[str]:
    """The alert families that mean "no data" rather than a flood."""
    return frozenset(r.id for r in rules.rules if isinstance(r, SilenceRule))


def manual_sms(
    config: Config,
    registry: Registry,
    rules: RuleSet,
    roster: DutyRoster,
    pool: psycopg_pool.AsyncConnectionPool,
) -> ManualSms:
    groups = {
        name: [Recipient(Role.CONTACT, m.name, m.phone) for m in members]
        for name, members in config.sms.groups.items()
    }
    return ManualSms(
        config.sms,
        Directory(registry, groups),
        rules,
        pool,
        lambda: roster.on_duty(dt.datetime.now(dt.UTC)),
        silence_families(rules),
    )


@contextlib.asynccontextmanager
async def manual_sms_desk(config: Config) -> AsyncIterator[ManualSms]:
    """``hydro sms send``: the registry, the rules and a pool for one command."""
    registry, rules = load_stations(config), load_alert_rules(config)
    async with database(config) as pool:
        yield manual_sms(config, registry, rules, load_duty_roster(config), pool)


def manual_readings(
    config: Config, registry: Registry, pool: psycopg_pool.AsyncConnectionPool
) -> ManualReadings:
    writer = ReadingWriter(pool, journal=config.ingest.journal)
    return ManualReadings(config.ingest, registry.by_code, writer)


async def enter_reading(config: Config, entry: ManualEntry) -> Reading:
    """Stores a reading an operator typed in (``hydro readings add``); ReadingRefused, nothing
    stored, when it is refused."""
    registry = load_stations(config)
    async with database(config) as pool:
        return await manual_readings(config, registry, pool).enter(entry)


def daily_reports(
    config: Config,
    registry: Registry,
    rules: RuleSet,
    roster: DutyRoster,
    pool: psycopg_pool.AsyncConnectionPool,
) -> DailyReports:
    return DailyReports(
        config.report,
        registry,
        rules,
        pool,
        zone=config.registry.default_timezone,
        roster=roster,
    )


async def _formatted_report(
    reports: DailyReports, day: dt.date | None, form: str
) -> tuple[str, bool, dt.date]:
    report, stored = await reports.report(day or reports.last_ended_day())
    return FORMATS[form](report), stored, report.day


async def _start_alerting(  # noqa: PLR0917 - the parts it runs, built by its caller
    config: Config,
    registry: Registry,
    rules: RuleSet,
    roster: DutyRoster,
    pool: psycopg_pool.AsyncConnectionPool,
    clock: Callable[[], dt.datetime] | None,
) -> ScheduledJobs:
    links = confirmation_links(config)
    evaluator = (
        AlertEvaluator(config.alerting, registry, rules, pool, clock=clock, links=links)
        if clock
        else AlertEvaluator(config.alerting, registry, rules, pool, links=links)
    )
    await evaluator.load_state()
    dispatcher = Dispatcher(config.sms, sms_provider(config, pool), pool, roster, config.voice)
    await dispatcher.recover()
    # On the evaluator's clock; the duty officers are who is on duty at each step.
    ladders = (
        LadderRunner(registry, rules, pool, roster.on_duty, links, clock=clock)
        if clock
        else LadderRunner(registry, rules, pool, roster.on_duty, links)
    )

    async def run_ladders() -> None:
        if await ladders.run():
            dispatcher.wake()  # the calls go now

    async def evaluate() -> None:
        report = await evaluator.tick()
        metrics.EVALUATION_SECONDS.observe(report.seconds)
        if any(change.messages for change in report.changes):
            dispatcher.wake()  # the alert's SMS go now, not at the next poll
        if any(c.change in _LADDER_STARTS and not c.late for c in report.changes):
            wake_ladders()  # the first calls go as soon as the crossing is stored

    # A send under way at stop may take the provider's whole timeout to finish.
    jobs = ScheduledJobs(grace=max(dt.timedelta(seconds=10), 2 * config.sms.provider_timeout))
    wake_ladders = jobs.every(config.alerting.interval, run_ladders)
    wake = jobs.every(config.alerting.interval, evaluate)
    jobs.beside(JournalListener(config.database, wake, fallback=config.alerting.interval).run)
    jobs.beside(dispatcher.run)  # its own task: evaluation never waits for a provider
    reports = daily_reports(config, registry, rules, roster, pool)
    jobs.daily(config.report.daily_at, config.registry.default_timezone, reports.publish_due)

    async def catch_up_daily_report() -> None:
        await reports.publish_due(unless_empty=True)

    jobs.once(catch_up_daily_report)
    jobs.start()
    log.info(
        "alerting: every %ss and as readings arrive, %d rules, SMS via %s (sender %s)",
        config.alerting.interval.total_seconds(),
        len(rules.rules),
        config.sms.provider,
        dispatcher.name,
    )
    return jobs


# The changes that may start a 叫应 ladder (an alert reaching a red or orange rule).
_LADDER_STARTS = (AlertChangeKind.OPEN, AlertChangeKind.ESCALATE)


def confirmation_links(config: Config) -> Links | None:
    """None without ``api.public_url``: a link nobody can open is not sent."""
    public_url = config.api.public_url
    return Links(public_url, config.alerting.link_ttl) if public_url else None


def sms_provider(
    config: Config, pool: psycopg_pool.AsyncConnectionPool | None = None
) -> SmsProvider:
    """The provider of SMS and calls. The console's simulated people record their answers in
    ``pool`` as the webhooks record real ones (none recorded without it)."""
    sms = config.sms
    if sms.provider == "console":
        answer = None if pool is None else console_answer(pool)
        return ConsoleProvider(answers=config.voice.console_answers, answer=answer)
    secrets = (sms.twilio_account_sid, sms.twilio_auth_token, sms.twilio_from)
    sid, token, sender = (s.get_secret_value() if s else "" for s in secrets)  # SmsConfig checked
    public_url = config.api.public_url
    return TwilioProvider(
        sid,
        token,
        sender,
        base_url=sms.twilio_base_url,
        status_callback=f"{public_url}{TWILIO_STATUS_PATH}" if public_url else None,
        calls=CallWebhooks(
            f"{public_url}{TWILIO_GATHER_PATH}", f"{public_url}{TWILIO_CALL_STATUS_PATH}"
        )
        if public_url
        else None,
        speech=speech(config),
        timeout=sms.provider_timeout.total_seconds(),
    )


def speech(config: Config) -> Speech:
    return Speech(config.voice.language, config.voice.tts_voice)


def console_answer(pool: psycopg_pool.AsyncConnectionPool) -> CallAnswer:
    """A console call's simulated answer, recorded through the webhooks' own functions: the key
    press, then the call's final status."""

    async def answer(call: Notification, call_sid: str, digits: str | None) -> None:
        assert call.outbox_id is not None  # claimed from its row
        if digits is not None:
            await press_key(pool, call.outbox_id, digits, dt.datetime.now(dt.UTC))
        await report_call_status(
            pool, call_sid, "no-answer" if digits is None else "completed", None
        )

    return answer


def stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def quarantine(config: Config, query: QuarantineFilter) -> list[QuarantineEntry]:
    async with database(config) as pool:
        return await list_quarantine(pool, query)


async def status(config: Config) -> StorageStatus:
    async with database(config) as pool:
        return await storage_status(pool)


async def run_simulation(
    config: Config, plan: SimulationPlan, progress: PublishProgress | None = None
) -> PublishProgress:
    """Publishes the plan's steps from ``plan.done`` on; ``progress`` counts what has gone."""
    storm = plan_storm(load_stations(config), plan)
    stations, weather = storm.stations, storm.weather
    steps = plan.steps - plan.done
    if plan.protocol == "sl651":
        return await _send_rtu_storm(
            config, stations, weather(), steps=steps, speed=plan.speed, progress=progress
        )
    if plan.sl651_gateway is None:
        return await publish_storm(
            config.mqtt,
            stations,
            weather(),
            steps=steps,
            speed=plan.speed,
            batch=plan.batch,
            progress=progress,
        )
    # The gateway's stations as RTUs through the SL 651 receiver, the rest over MQTT; two copies
    # of one deterministic model give both the same weather.
    rtus = [i for i, s in enumerate(stations) if s.gateway == plan.sl651_gateway]
    others = [i for i, s in enumerate(stations) if s.gateway != plan.sl651_gateway]
    progress = progress or PublishProgress()
    progress.other_steps = 0
    await asyncio.gather(
        publish_storm(
            config.mqtt,
            [stations[i] for i in others],
            Subset(weather(), others),
            steps=steps,
            speed=plan.speed,
            batch=plan.batch,
            progress=progress,
        ),
        _send_rtu_storm(
            config,
            [stations[i] for i in rtus],
            Subset(weather(), rtus),
            steps=steps,
            speed=plan.speed,
            progress=progress,
            beside=True,
        ),
    )
    return progress


async def _send_rtu_storm(
    config: Config,
    stations: Sequence[Station],
    model: StepSource,
    *,
    steps: int,
    speed: float,
    progress: PublishProgress | None,
    beside: bool = False,
) -> PublishProgress:
    """Every station an RTU on its own connection to the SL 651 receiver, sending a timed report
    per step and waiting for its answer; ``speed`` as for :func:`run_simulation`. ``beside``:
    another sender shares ``progress`` and counts its steps; these go to ``other_steps``."""
    settings = config.sl651
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    password = settings.password.get_secret_value() if settings.password else "0000"
    senders = [(i, s, a) for i, s in enumerate(stations) if (a := address_of(s)) is not None]
    progress = progress or PublishProgress()
    pause = model.interval.total_seconds() / speed if speed > 0 else 0.0
    started = asyncio.get_running_loop().time()
    try:
        rtus = await asyncio.gather(*(Rtu.connect(host, settings.port) for _ in senders))
    except OSError as exc:
        raise HydroError(
            f"cannot reach the SL 651 receiver at {host}:{settings.port}: {exc}"
        ) from exc
    try:
        for index in range(steps):
            if pause:
                wake = started + index * pause
                await asyncio.sleep(max(0.0, wake - asyncio.get_running_loop().time()))
            step = model.step()
            columns = [c.tolist() for c in (step.water_level, step.flow, step.rainfall)]
            volts, silent = step.battery_v.tolist(), step.silent.tolist()
            sends: list[Coroutine[Any, Any, Frame | None]] = []
            for rtu, (i, station, address) in zip(rtus, senders, strict=True):
                if silent[i]:
                    continue
                frame = timed_report(
                    station,
                    address,
                    serial=progress.messages + len(sends) + 1,
                    time=step.time,
                    water_level=columns[0][i],
                    flow=columns[1][i],
                    rainfall=columns[2][i],
                    battery_v=volts[i],
                    password=password,
                )
                sends.append(rtu.send(frame))
            await asyncio.gather(*sends)
            progress.messages += len(sends)
            progress.readings += len(sends)
            if beside:
                progress.other_steps = (progress.other_steps or 0) + 1
            else:
                progress.steps += 1
    except (ConnectionError, OSError) as exc:
        raise HydroError(f"the SL 651 receiver dropped a simulated RTU: {exc}") from exc
    finally:
        await asyncio.gather(*(rtu.close() for rtu in rtus))
    if not beside:
        progress.seconds = asyncio.get_running_loop().time() - started
    return progress


async def run_sl651_gateway(
    config: Config,
    stop: asyncio.Event | None = None,
    listening: Callable[[int], None] | None = None,
) -> Sl651Gateway:
    """The SL 651 receiver until SIGINT/SIGTERM (or ``stop``); ``listening`` gets its port."""
    registry = load_stations(config)
    stop = stop or stop_on_signals()
    publisher = MqttPublisher(
        config.mqtt, config.sl651.client_id, config.sl651.publish_timeout.total_seconds()
    )
    gateway = Sl651Gateway(config, address_map(registry.stations), publisher)
    try:
        await gateway.serve(stop, listening)
    finally:
        await publisher.close()
    return gateway


async def alerts(config: Config, query: AlertFilter) -> list[AlertRecord]:
    async with database(config) as pool:
        return await list_alerts(pool, query)


@dataclasses.dataclass(frozen=True, slots=True)
class AlertView:
    """One alert with everything it caused: transitions, messages, its ladder, its answers."""

    alert: AlertRecord
    events: list[AlertEventRecord]
    messages: list[OutboxRecord]
    ladder: list[LadderStepRecord]
    confirmations: list[Confirmation]


async def alert(config: Config, alert_id: int) -> AlertView | None:
    async with database(config) as pool:
        found = await alert_detail(pool, alert_id)
        if found is None:
            return None
        return AlertView(*found, *await ladder_detail(pool, alert_id))


async def confirm_alert(
    config: Config,
    alert_id: int,
    *,
    role: Role | None,
    phone: str | None,
    by: str,
    note: str | None,
) -> tuple[Confirmation, bool] | str | None:
    """叫应 on a person's behalf (电话已联系), as ``POST /api/v1/alerts/{id}/confirmations``."""
    registry, now = load_stations(config), dt.datetime.now(dt.UTC)
    duty = load_duty_roster(config).on_duty(now)
    async with database(config) as pool:
        found = await confirm_person(
            pool, registry, duty, alert_id, role=role, phone=phone, by=by, note=note, now=now
        )
    if isinstance(found, tuple) and found[1]:
        standing = found[0]
        log.info(
            "alert=%d confirmed for %s by %s",
            alert_id,
            standing.recipient.role,
            standing.recorded,
        )
    return found


async def acknowledge_alert(config: Config, alert_id: int, by: str) -> AlertRecord | None:
    async with database(config) as pool:
        acknowledged = await acknowledge(pool, alert_id, by)
    if acknowledged is not None:
        log.info("alert=%d acknowledged by %s", alert_id, by)
    return acknowledged


async def outbox(config: Config, status: str | None, limit: int) -> list[OutboxRecord]:
    async with database(config) as pool:
        return await list_outbox(pool, status=status, limit=limit)


async def daily_report(config: Config, day: dt.date | None) -> tuple[DailyReport, bool]:
    """The report of ``day`` (default: the last one that ended) and whether it is stored."""
    registry = load_stations(config)
    rules = load_alert_rules(config)
    async with database(config) as pool:
        reports = daily_reports(config, registry, rules, load_duty_roster(config), pool)
        return await reports.report(day or reports.last_ended_day())
