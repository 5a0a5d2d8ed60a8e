"""hydro run's scheduler: a run skipped because the previous one is still going is logged."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest

from hydro.scheduling import ScheduledJobs
from tests.support import wait_until


def test_a_skipped_run_is_logged_naming_the_job(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    release = asyncio.Event()

    def skipped() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "hydro" and "skipped" in r.getMessage()]

    async def evaluate() -> None:
        await release.wait()  # stuck, as behind a provider that never answers

    async def main() -> None:
        jobs = ScheduledJobs()
        jobs.every(dt.timedelta(milliseconds=100), evaluate)
        jobs.start()
        await wait_until(lambda: bool(skipped()), what="a skipped run in the log")
        release.set()
        await jobs.stop()

    asyncio.run(main())
    first = skipped()[0]
    assert first.levelno == logging.WARNING
    assert first.getMessage() == (
        "job evaluate: a run was skipped, the previous one is still going"
    )
