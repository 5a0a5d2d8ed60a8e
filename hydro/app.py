"""The one place that builds concrete objects from configuration and runs them.

Commands (``hydro.cli``) parse arguments and print; everything they need of the pipeline comes
from here, so the wiring of pool, registry, writer and services is written once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg_pool

from hydro.config import Config, LoggingConfig, find_config_path, load_config
from hydro.errors import ConfigError, Problem
from hydro.ingest.service import IngestService
from hydro.stations import Registry, check_registry, load_registry
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
    logging.getLogger("psycopg").setLevel(max(logging.INFO, root.level))


@contextlib.asynccontextmanager
async def database(config: Config) -> AsyncIterator[psycopg_pool.AsyncConnectionPool]:
    async with open_pool(config.database) as pool:
        yield pool


async def migrate_database(config: Config) -> MigrationReport:
    async with database(config) as pool, pool.connection() as conn:
        return await migrate(conn, config.database, config.registry.default_timezone)


def check(config_path: Path | None) -> list[Problem]:
    """Every problem in the configuration and the station registry, for ``hydro check``."""
    try:
        config = load_config(find_config_path(config_path))
    except ConfigError as exc:
        return list(exc.problems)
    _, problems = check_registry(config.registry.stations, config.registry.default_timezone)
    return problems


def load_stations(config: Config) -> Registry:
    registry = load_registry(config.registry.stations, config.registry.default_timezone)
    log.info("registry: %d stations from %s", len(registry), config.registry.stations)
    return registry


async def run_ingest(config: Config, stop: asyncio.Event | None = None) -> IngestService:
    """Ingests until SIGINT/SIGTERM (or ``stop``); migrates the schema first, idempotently."""
    registry = load_stations(config)
    stop = stop or _stop_on_signals()
    async with database(config) as pool:
        async with pool.connection() as conn:
            report = await migrate(conn, config.database, config.registry.default_timezone)
        log.info("storage mode: %s", report.mode)
        service = IngestService(config, registry.by_code, ReadingWriter(pool))
        await service.run(stop)
    return service


def _stop_on_signals() -> asyncio.Event:
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
