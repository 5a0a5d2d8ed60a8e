"""``--timescaledb off|required|both``: which storage modes a benchmark that creates databases
measures. TimescaleDB is the primary store, so where the extension is installed the default runs
both modes in the same run (one machine, one load) and prints them side by side, keyed by
:func:`label`.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psycopg_pool

from hydro.config import Config
from hydro.local import LocalPostgres, timescaledb_installed
from hydro.store.db import open_pool
from hydro.store.schema import migrate

CHOICES = {"off": ("off",), "required": ("required",), "both": ("off", "required")}


def add_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timescaledb",
        choices=tuple(CHOICES),
        default="both" if timescaledb_installed() else "off",
        help="storage modes to measure (database.timescaledb); default: both where the"
        " extension is installed, else off",
    )


def modes(choice: str) -> tuple[str, ...]:
    """The ``database.timescaledb`` values to run, in order; refuses TimescaleDB where it cannot
    be loaded, rather than measuring plain PostgreSQL under its name."""
    wanted = CHOICES[choice]
    if "required" in wanted and not timescaledb_installed():
        raise SystemExit(
            f"--timescaledb {choice}: the timescaledb extension is not installed in this"
            " machine's PostgreSQL (no timescaledb.control / timescaledb.so); use --timescaledb off"
        )
    return wanted


def label(mode: str) -> str:
    """The JSON key of a mode's figures."""
    return "postgresql" if mode == "off" else "timescaledb"


@contextlib.asynccontextmanager
async def migrated(
    url: str, mode: str, zone: str
) -> AsyncIterator[tuple[Config, psycopg_pool.AsyncConnectionPool]]:
    """The config of one storage mode on ``url`` and a pool on its migrated schema."""
    config = Config.model_validate(
        {"database": {"url": url, "timescaledb": mode}, "registry": {"default_timezone": zone}}
    )
    async with open_pool(config.database) as pool:
        async with pool.connection() as conn:
            await migrate(conn, config.database, zone)
        yield config, pool


def each_mode(
    choice: str, measure: Callable[[str, str], dict[str, object]]
) -> dict[str, dict[str, object]]:
    """``measure(url, mode)`` on a database of its own for each mode of ``choice``, on one
    throw-away PostgreSQL; the figures keyed by :func:`label`."""
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        server = LocalPostgres(Path(folder))
        server.start()
        try:
            for mode in modes(choice):
                results[label(mode)] = measure(server.create_database(f"bench_{mode}"), mode)
        finally:
            server.stop()
    return results
