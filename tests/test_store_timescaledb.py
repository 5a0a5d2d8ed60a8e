"""TimescaleDB's side of the store: enabling it."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest

from hydro.config import DatabaseConfig
from hydro.errors import StorageError
from hydro.local import LocalPostgres
from hydro.models import Reading
from hydro.store.db import open_pool
from hydro.store.readings import ReadingWriter
from hydro.store.schema import MigrationReport, StorageMode, migrate
from tests.support import count_rows

pytestmark = pytest.mark.timescaledb

ZONE = "Asia/Shanghai"
# The top of the current hour: the policies' windows are measured back from the real clock.
NOW = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)


async def _migrate(pool: Any, config: DatabaseConfig) -> MigrationReport:
    async with pool.connection() as conn:
        return await migrate(conn, config, ZONE)


def test_auto_falls_back_on_a_new_connection_when_timescaledb_is_not_preloaded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = LocalPostgres(tmp_path / "pg", preload_timescaledb=False)
    server.start()
    try:
        url = server.create_database("hydro")

        async def start(mode: str) -> MigrationReport:
            config = DatabaseConfig(url=url, timescaledb=mode)
            async with open_pool(config) as pool:
                report = await _migrate(pool, config)
                await ReadingWriter(pool).write([Reading("S1", NOW, water_level=1.0)])
            return report

        with caplog.at_level(logging.WARNING, logger="hydro.store.schema"):
            assert asyncio.run(start("auto")).mode is StorageMode.POSTGRESQL
        assert "shared_preload_libraries = 'timescaledb'" in caplog.text
        assert count_rows(url) == 1
        with pytest.raises(StorageError, match="shared_preload_libraries = 'timescaledb'"):
            asyncio.run(start("required"))
    finally:
        server.stop()
