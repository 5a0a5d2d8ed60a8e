"""The one place that builds concrete objects from configuration and runs them.

Commands (``hydro.cli``) parse arguments and print; everything they need of the pipeline comes
from here, so the wiring of pool, registry, writer and services is written once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path

import psycopg_pool
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from hydro import metrics
from hydro.alerts.evaluator import AlertEvaluator
from hydro.api import TWILIO_STATUS_PATH, ApiContext, create_api, listen, serve
from hydro.broker import broker_problem
from hydro.config import Config, LoggingConfig, find_config_path, load_config
from hydro.errors import ConfigError, HydroError, Problem
from hydro.ingest.service import IngestService
from hydro.notify.dispatcher import Dispatcher
from hydro.notify.providers import ConsoleProvider, SmsProvider, TwilioProvider
from hydro.reports.formats import FORMATS
from hydro.reports.model import DailyReport
from hydro.reports.service import DailyReports
from hydro.rules import RuleSet, check_rules, load_rules
from hydro.rules.model import SilenceRule
from hydro.simulate import (
    REPORT_INTERVAL,
    PublishProgress,
    StormModel,
    outage_at_peak,
    publish_storm,
)
from hydro.stations import Registry, check_registry, load_registry
from hydro.store.alerts import (
    AlertEventRecord,
    AlertFilter,
    AlertRecord,
    acknowledge,
    alert_detail,
    list_alerts,
)
from hydro.store.db import open_pool
from hydro.store.outbox import OutboxRecord, list_outbox
from hydro.store.quarantine import QuarantineEntry, QuarantineFilter, list_quarantine
from hydro.store.readings import ReadingWriter
from hydro.store.schema import MigrationReport, migrate
from hydro.store.status import StorageStatus, storage_status

log = logging.getLogger("hydro")


def configure(config_path: Path | None) -> Config:
    """Loads the configuration (raising ConfigError) and sets up logging from it."""
    config = load_config(find_config_path(config_path))
    configure_logging(config.logging)
    return config


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(config: LoggingConfig) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if config.format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.level)
    # paho logs every packet at DEBUG; only hydro's own DEBUG is worth reading.
    logging.getLogger("mqtt").setLevel(max(logging.INFO, root.level))
    logging.getLogger("psycopg").setLevel(max(logging.WARNING, root.level))
    # APScheduler reports every run of every job at INFO; a skipped run is logged by
    # ScheduledJobs, by the job's name. Failed jobs are ERRORs.
    logging.getLogger("apscheduler").setLevel(max(logging.ERROR, root.level))
    # The twilio client logs ten lines per SMS (URL and headers, secrets masked by hydro).
    logging.getLogger("twilio.http_client").setLevel(max(logging.WARNING, root.level))


@contextlib.asynccontextmanager
async def database(config: Config) -> AsyncIterator[psycopg_pool.AsyncConnectionPool]:
    async with open_pool(config.database) as pool:
        yield pool


async def migrate_database(config: Config) -> MigrationReport:
    async with database(config) as pool, pool.connection() as conn:
        return await migrate(conn, config.database, config.registry.default_timezone)


def check(config_path: Path | None) -> list[Problem]:
    """Every problem in the configuration, the station registry and the alert rules."""
    try:
        config = load_config(find_config_path(config_path))
    except ConfigError as exc:
        return list(exc.problems)
    _, problems = check_registry(config.registry.stations, config.registry.default_timezone)
    _, rule_problems = check_rules(config.alerting.rules)
    return problems + rule_problems


def load_alert_rules(config: Config) -> RuleSet:
    rules = load_rules(config.alerting.rules)
    log.info("alert rules: %d from %s", len(rules.rules), config.alerting.rules)
    return rules


def load_stations(config: Config) -> Registry:
    registry = load_registry(config.registry.stations, config.registry.default_timezone)
    log.info("registry: %d stations from %s", len(registry), config.registry.stations)
    return registry


async def run_ingest(
    config: Config,
    stop: asyncio.Event | None = None,
    subscribed: asyncio.Event | None = None,
    *,
    alerting: bool = False,
    clock: Callable[[], dt.datetime] | None = None,
) -> IngestService:
    """Ingests until SIGINT/SIGTERM (or ``stop``); migrates the schema first, idempotently.

    With ``alerting`` the scheduler also evaluates the rules every ``alerting.interval``, the
    dispatcher sends the outbox and, if ``api.enabled``, the API and web page are served.
    ``subscribed`` is set once the broker holds our subscription: from then on nothing
    published is lost, even while hydro is down. ``clock`` replaces the wall clock for
    alerting (silence, lateness): ``hydro demo`` plays a storm faster than time passes.
    """
    registry = load_stations(config)
    rules = load_alert_rules(config) if alerting else None
    stop = stop or stop_on_signals()
    async with database(config) as pool:
        async with pool.connection() as conn:
            report = await migrate(conn, config.database, config.registry.default_timezone)
        log.info("storage mode: %s", report.mode)
        writer = ReadingWriter(pool, journal=config.ingest.journal)
        service = IngestService(config, registry.by_code, writer)
        if subscribed is not None:
            service.subscribed = subscribed
        listener = (
            listen(config.api.host, config.api.port) if rules and config.api.enabled else None
        )
        jobs = await _start_alerting(config, registry, rules, pool, clock) if rules else None
        api = (
            asyncio.create_task(_serve_api(config, pool, registry, rules, listener, stop))
            if rules and listener
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
    stop = stop or stop_on_signals()
    async with database(config) as pool:
        async with pool.connection() as conn:
            await migrate(conn, config.database, config.registry.default_timezone)
        listener = listen(config.api.host, config.api.port)
        await _serve_api(config, pool, registry, rules, listener, stop)


async def _serve_api(  # noqa: PLR0917 - the parts it serves, built by its callers
    config: Config,
    pool: psycopg_pool.AsyncConnectionPool,
    registry: Registry,
    rules: RuleSet,
    listener: socket.socket,
    stop: asyncio.Event,
) -> None:
    await serve(create_api(api_context(config, pool, registry, rules)), listener, stop)


def api_context(
    config: Config, pool: psycopg_pool.AsyncConnectionPool, registry: Registry, rules: RuleSet
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
        silence_families=frozenset(r.id for r in rules.rules if isinstance(r, SilenceRule)),
        twilio_auth_token=auth_token.get_secret_value() if auth_token else None,
        public_url=config.api.public_url,
        duty_officers=config.sms.duty_officers,
        broker_reachable=lambda: broker_problem(config.mqtt),
        daily_report=functools.partial(
            _formatted_report, DailyReports(config, registry, rules, pool)
        ),
        max_body_bytes=config.api.max_body_bytes,
        max_csv_rows=config.api.max_csv_rows,
        max_series_points=config.api.max_series_points,
    )


async def _formatted_report(
    reports: DailyReports, day: dt.date | None, form: str
) -> tuple[str, bool, dt.date]:
    report, stored = await reports.report(day or reports.last_ended_day())
    return FORMATS[form](report), stored, report.day


class ScheduledJobs:
    """Alerting's periodic jobs, and the tasks that run beside them (the dispatcher). Stopping
    lets a running tick or send finish (up to a grace period), so a shutdown does not leave SMS
    half-sent for a standby or the next start to repeat. A run skipped because the previous one
    is still going is logged as a warning naming the job."""

    def __init__(self, grace: dt.timedelta = dt.timedelta(seconds=10)) -> None:
        self._scheduler = AsyncIOScheduler(timezone=dt.UTC)
        self._scheduler.add_listener(self._skipped, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        self._running: set[asyncio.Task[None]] = set()
        self._loops: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._grace = grace

    def every(self, interval: dt.timedelta, job: Callable[[], Awaitable[None]]) -> None:
        self._add(
            job, "interval", seconds=interval.total_seconds(), next_run_time=dt.datetime.now(dt.UTC)
        )

    def daily(self, at: dt.time, timezone: str, job: Callable[[], Awaitable[None]]) -> None:
        """Every day at ``at`` in ``timezone``."""
        self._add(job, "cron", hour=at.hour, minute=at.minute, timezone=timezone)

    def once(self, job: Callable[[], Awaitable[None]]) -> None:
        """Right after start."""
        self._add(job, "date", run_date=dt.datetime.now(dt.UTC))

    def beside(self, run: Callable[[asyncio.Event], Coroutine[object, object, None]]) -> None:
        """Runs ``run(stopping)`` on a task of its own from start to stop: nothing waits for it."""
        self._loops.add(asyncio.create_task(run(self._stopping)))

    def _add(self, job: Callable[[], Awaitable[None]], trigger: str, **when: object) -> None:
        self._scheduler.add_job(
            self._tracked(job),
            trigger,
            name=job.__name__,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            **when,
        )

    def _tracked(self, job: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        async def tracked() -> None:
            task = asyncio.current_task()
            assert task is not None
            self._running.add(task)
            try:
                await job()
            except HydroError as exc:
                if not exc.retryable:
                    raise
                # The database or broker is away: the next run tries again, no traceback needed.
                log.warning("%s: %s; trying again at the next run", job.__name__, exc)
            finally:
                self._running.discard(task)

        return tracked

    def _skipped(self, event: JobEvent) -> None:
        job = self._scheduler.get_job(event.job_id)
        log.warning(
            "job %s: a run was skipped, %s",
            job.name if job else event.job_id,
            "the previous one is still going"
            if event.code == EVENT_JOB_MAX_INSTANCES
            else "it could not start in time",
        )

    def start(self) -> None:
        self._scheduler.start()

    async def stop(self) -> None:
        # APScheduler's shutdown cancels running coroutine jobs: let them finish first.
        self._scheduler.pause()
        self._stopping.set()
        running = self._running | self._loops
        if running:
            await asyncio.wait(running, timeout=self._grace.total_seconds())
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._scheduler.shutdown(wait=False)


async def _start_alerting(
    config: Config,
    registry: Registry,
    rules: RuleSet,
    pool: psycopg_pool.AsyncConnectionPool,
    clock: Callable[[], dt.datetime] | None,
) -> ScheduledJobs:
    evaluator = (
        AlertEvaluator(config.alerting, registry, rules, pool, clock=clock)
        if clock
        else AlertEvaluator(config.alerting, registry, rules, pool)
    )
    await evaluator.load_state()
    dispatcher = Dispatcher(config.sms, sms_provider(config), pool)
    await dispatcher.recover()

    async def evaluate() -> None:
        report = await evaluator.tick()
        metrics.EVALUATION_SECONDS.observe(report.seconds)
        if any(change.messages for change in report.changes):
            dispatcher.wake()  # the alert's SMS go now, not at the next poll

    # A send under way at stop may take the provider's whole timeout to finish.
    jobs = ScheduledJobs(grace=max(dt.timedelta(seconds=10), 2 * config.sms.provider_timeout))
    jobs.every(config.alerting.interval, evaluate)
    jobs.beside(dispatcher.run)  # its own task: evaluation never waits for a provider
    reports = DailyReports(config, registry, rules, pool)
    jobs.daily(config.report.daily_at, config.registry.default_timezone, reports.publish_due)

    async def catch_up_daily_report() -> None:
        await reports.publish_due(unless_empty=True)

    jobs.once(catch_up_daily_report)
    jobs.start()
    log.info(
        "alerting: every %ss, %d rules, SMS via %s (sender %s)",
        config.alerting.interval.total_seconds(),
        len(rules.rules),
        config.sms.provider,
        dispatcher.name,
    )
    return jobs


def sms_provider(config: Config) -> SmsProvider:
    sms = config.sms
    if sms.provider == "console":
        return ConsoleProvider()
    secrets = (sms.twilio_account_sid, sms.twilio_auth_token, sms.twilio_from)
    sid, token, sender = (s.get_secret_value() if s else "" for s in secrets)  # SmsConfig checked
    public_url = config.api.public_url
    return TwilioProvider(
        sid,
        token,
        sender,
        base_url=sms.twilio_base_url,
        status_callback=f"{public_url}{TWILIO_STATUS_PATH}" if public_url else None,
        timeout=sms.provider_timeout.total_seconds(),
    )


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


@dataclass(frozen=True)
class SimulationPlan:
    steps: int
    speed: float
    storm: float
    batch: int
    seed: int
    stations: int | None  # the first N of the registry; None for all
    start: dt.datetime | None  # None: in real time from now, else replayed up to now
    silent_gauge: bool = False  # the gauge rising furthest goes silent at its peak for 2 h
    done: int = 0  # steps already published by an earlier run of the same plan


def simulation_start(plan: SimulationPlan) -> dt.datetime:
    if plan.start is not None:
        return plan.start
    if 0 < plan.speed <= 1:  # real time: a live feed from now on, as gateways would send
        return _latest_report_time()
    return _latest_report_time() - (plan.steps - 1) * REPORT_INTERVAL


async def run_simulation(
    config: Config, plan: SimulationPlan, progress: PublishProgress | None = None
) -> PublishProgress:
    """Publishes the plan's steps from ``plan.done`` on; ``progress`` counts what has gone."""
    registry = load_stations(config)
    stations = registry.stations[: plan.stations] if plan.stations else registry.stations
    start = simulation_start(plan)
    outage = (
        outage_at_peak(stations, start=start, steps=plan.steps, storm=plan.storm, seed=plan.seed)
        if plan.silent_gauge
        else None
    )
    model = StormModel(
        stations, start=start, steps=plan.steps, storm=plan.storm, seed=plan.seed, outage=outage
    )
    for _ in range(plan.done):  # the same weather up to where the earlier run stopped
        model.step()
    log.info(
        "simulating %d stations, steps %d-%d of %d from %s, storm %.2f, speed %gx",
        len(stations),
        plan.done + 1,
        plan.steps,
        plan.steps,
        start.isoformat(),
        plan.storm,
        plan.speed,
    )
    if outage is not None:
        log.info(
            "station=%s will go silent at its peak, %s, for %d reports",
            stations[outage.index].code,
            (start + outage.first * REPORT_INTERVAL).isoformat(),
            outage.last - outage.first,
        )
    return await publish_storm(
        config.mqtt,
        stations,
        model,
        steps=plan.steps - plan.done,
        speed=plan.speed,
        batch=plan.batch,
        progress=progress,
    )


def _latest_report_time() -> dt.datetime:
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    return now - dt.timedelta(minutes=now.minute % 5)


async def alerts(config: Config, query: AlertFilter) -> list[AlertRecord]:
    async with database(config) as pool:
        return await list_alerts(pool, query)


async def alert(
    config: Config, alert_id: int
) -> tuple[AlertRecord, list[AlertEventRecord], list[OutboxRecord]] | None:
    async with database(config) as pool:
        return await alert_detail(pool, alert_id)


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
        reports = DailyReports(config, registry, rules, pool)
        return await reports.report(day or reports.last_ended_day())
