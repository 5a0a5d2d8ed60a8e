"""The one place that builds concrete objects from configuration and runs them.

Commands (``hydro.cli``) parse arguments and print; everything they need of the pipeline comes
from here, so the wiring of pool, registry, writer and services is written once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg_pool
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from hydro.alerts.evaluator import AlertEvaluator
from hydro.config import Config, LoggingConfig, SmsConfig, find_config_path, load_config
from hydro.errors import ConfigError, HydroError, Problem
from hydro.ingest.service import IngestService
from hydro.notify.dispatcher import Dispatcher
from hydro.notify.providers import ConsoleProvider, SmsProvider, TwilioProvider
from hydro.reports.model import DailyReport
from hydro.reports.service import DailyReports
from hydro.rules import RuleSet, check_rules, load_rules
from hydro.simulate import REPORT_INTERVAL, PublishProgress, StormModel, publish_storm
from hydro.stations import Registry, check_registry, load_registry
from hydro.store.alerts import (
    AlertEventRecord,
    AlertFilter,
    AlertRecord,
    OutboxRecord,
    acknowledge,
    alert_detail,
    list_alerts,
    list_outbox,
)
from hydro.store.db import open_pool
from hydro.store.queries import (
    QuarantineEntry,
    QuarantineFilter,
    StorageStatus,
    list_quarantine,
    storage_status,
)
from hydro.store.readings import ReadingWriter
from hydro.store.schema import MigrationReport, migrate

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
    # APScheduler reports every run of every job at INFO.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))


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
) -> IngestService:
    """Ingests until SIGINT/SIGTERM (or ``stop``); migrates the schema first, idempotently.

    With ``alerting`` the scheduler also evaluates the rules every ``alerting.interval`` and the
    dispatcher sends the outbox. ``subscribed`` is set once the broker holds our subscription:
    from then on nothing published is lost, even while hydro is down.
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
        jobs = await _start_alerting(config, registry, rules, pool) if rules else None
        try:
            await service.run(stop)
        finally:
            if jobs is not None:
                await jobs.stop()
    return service


class _ScheduledJobs:
    """Alerting's periodic jobs. Stopping lets a running tick or send finish (up to a grace
    period), so a shutdown does not leave SMS half-sent for the next start to repeat."""

    def __init__(self) -> None:
        self._scheduler = AsyncIOScheduler(timezone=dt.UTC)
        self._running: set[asyncio.Task[None]] = set()

    def every(self, interval: dt.timedelta, job: Callable[[], Awaitable[None]]) -> None:
        self._add(
            job, "interval", seconds=interval.total_seconds(), next_run_time=dt.datetime.now(dt.UTC)
        )

    def daily(self, at: dt.time, timezone: str, job: Callable[[], Awaitable[None]]) -> None:
        """Every day at ``at`` in ``timezone``."""
        self._add(job, "cron", hour=at.hour, minute=at.minute, timezone=timezone)

    def _add(self, job: Callable[[], Awaitable[None]], trigger: str, **when: object) -> None:
        self._scheduler.add_job(
            self._tracked(job),
            trigger,
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

    def start(self) -> None:
        self._scheduler.start()

    async def stop(self, grace: float = 10.0) -> None:
        # APScheduler's shutdown cancels running coroutine jobs: let them finish first.
        self._scheduler.pause()
        if self._running:
            await asyncio.wait(set(self._running), timeout=grace)
        self._scheduler.shutdown(wait=False)


async def _start_alerting(
    config: Config, registry: Registry, rules: RuleSet, pool: psycopg_pool.AsyncConnectionPool
) -> _ScheduledJobs:
    evaluator = AlertEvaluator(config.alerting, registry, rules, pool)
    await evaluator.load_state()
    dispatcher = Dispatcher(config.sms, sms_provider(config.sms), pool)
    await dispatcher.recover()

    async def send_due() -> None:
        await dispatcher.run_once()  # a second's worth at the configured rate

    async def evaluate_then_send() -> None:
        report = await evaluator.tick()
        if any(change.messages for change in report.changes):
            await send_due()  # the alert's SMS go now, not at the next poll

    jobs = _ScheduledJobs()
    jobs.every(config.alerting.interval, evaluate_then_send)
    jobs.every(dt.timedelta(seconds=1), send_due)  # retries that came due
    reports = DailyReports(config, registry, rules, pool)
    jobs.daily(config.report.daily_at, config.registry.default_timezone, reports.publish_due)
    jobs.start()
    log.info(
        "alerting: every %ss, %d rules, SMS via %s",
        config.alerting.interval.total_seconds(),
        len(rules.rules),
        config.sms.provider,
    )
    return jobs


def sms_provider(config: SmsConfig) -> SmsProvider:
    if config.provider == "console":
        return ConsoleProvider()
    secrets = (config.twilio_account_sid, config.twilio_auth_token, config.twilio_from)
    sid, token, sender = (s.get_secret_value() if s else "" for s in secrets)  # SmsConfig checked
    return TwilioProvider(sid, token, sender, base_url=config.twilio_base_url)


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


async def run_simulation(config: Config, plan: SimulationPlan) -> PublishProgress:
    registry = load_stations(config)
    stations = registry.stations[: plan.stations] if plan.stations else registry.stations
    if plan.start is not None:
        start = plan.start
    elif 0 < plan.speed <= 1:  # real time: a live feed from now on, as gateways would send
        start = _latest_report_time()
    else:
        start = _latest_report_time() - (plan.steps - 1) * REPORT_INTERVAL
    model = StormModel(stations, start=start, steps=plan.steps, storm=plan.storm, seed=plan.seed)
    log.info(
        "simulating %d stations, %d steps from %s, storm %.2f, speed %gx",
        len(stations),
        plan.steps,
        start.isoformat(),
        plan.storm,
        plan.speed,
    )
    return await publish_storm(
        config.mqtt, stations, model, steps=plan.steps, speed=plan.speed, batch=plan.batch
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
