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


def test_wake_ups_during_a_run_fold_into_exactly_one_more_run() -> None:
    runs = 0
    started, release = asyncio.Event(), asyncio.Event()

    async def evaluate() -> None:
        nonlocal runs
        runs += 1
        started.set()
        await release.wait()

    async def main() -> None:
        jobs = ScheduledJobs()
        wake = jobs.every(dt.timedelta(hours=1), evaluate)  # one tick at start, then wake-ups
        jobs.start()
        await started.wait()
        for _ in range(50):
            wake()
        release.set()
        await wait_until(lambda: runs == 2, what="the one run the wake-ups asked for")
        wake()  # idle: runs at once
        await wait_until(lambda: runs == 3, what="a run woken while idle")
        await jobs.stop()

    asyncio.run(main())
    assert runs == 3
