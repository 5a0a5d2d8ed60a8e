"""Daily report over 6,951 stations with a full hydrological day of 5-minute data; prints JSON.

A throw-away PostgreSQL is loaded as gateways fill it, time after time: the reported day, the
three days before it (a 7-day TimescaleDB chunk is half full on an average morning) and the
08:00 reading that closes the day. Rain gauges report rainfall, rivers and reservoirs water
levels; the reservoirs have the generator's stage-storage curves, so the report reads the storage
of the medium and larger ones at both 08:00s. The report is built several times (the queries and
the pure build), in turn with the same registry without curves: the report as it was before
storage, measured under the same load. Runs in both storage
modes when TimescaleDB is installed (the continuous aggregates materialised, as their policies
keep them). The goal is under 1 s.

    python3 -m benchmarks.bench_report [--timescaledb off|required|both] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import time
from pathlib import Path

import numpy as np
import psycopg

from benchmarks import storage
from hydro.duty import DutyRoster
from hydro.models import StationKind
from hydro.reports.daily import day_bounds
from hydro.reports.service import DailyReports
from hydro.rules import load_rules
from hydro.stations import Registry, generate_curves, generate_stations

STATIONS = 6951
DAY = dt.date(2026, 5, 7)
ZONE = "Asia/Shanghai"
DAYS_BEFORE = 3
RULES = load_rules(Path(__file__).resolve().parent.parent / "alert_rules")


def load(url: str, registry: Registry) -> int:
    """COPYs the readings straight into the table, in the order they arrive: the writer's own
    cost is bench_ingest's business."""
    start, end = day_bounds(DAY, ZONE)
    slots = int((end - start) / dt.timedelta(minutes=5))
    times = [start + dt.timedelta(minutes=5 * i) for i in range(-slots * DAYS_BEFORE, slots + 1)]
    rng = np.random.default_rng(1)
    rain = np.array([s.kind is StationKind.RAIN for s in registry.stations])
    base = np.array([s.warning_level or s.normal_level or 100.0 for s in registry.stations])
    codes = [s.code for s in registry.stations]
    rows = 0
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy("COPY readings (station, time, water_level, rainfall) FROM STDIN") as copy:
            for t in times:
                rainfall = np.round(rng.gamma(0.3, 2.0, len(codes)), 1)
                level = base - 1 + rng.random(len(codes))
                for code, is_rain, mm, metres in zip(
                    codes, rain.tolist(), rainfall.tolist(), level.tolist(), strict=True
                ):
                    copy.write_row((code, t, None if is_rain else metres, mm if is_rain else None))
                rows += len(codes)
        conn.commit()
        conn.autocommit = True
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
            for view in ("readings_hourly", "readings_daily"):
                conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")  # type: ignore[arg-type]
        conn.execute("VACUUM ANALYZE readings")
    return rows


def measure(url: str, mode: str, registry: Registry, runs: int = 5) -> dict[str, object]:
    async def main() -> dict[str, object]:
        async with storage.migrated(url, mode, ZONE) as (config, pool):
            rows = await asyncio.to_thread(load, url, registry)
            # The same registry without its curves builds the report as it was before storage:
            # the two are built in turn, so a loaded machine slows both alike.
            variants = {
                "with_storage": registry,
                "without_storage": Registry.of(registry.stations),
            }
            reports = {
                name: DailyReports(config.report, held, RULES, pool, zone=ZONE, roster=DutyRoster())
                for name, held in variants.items()
            }
            timings: dict[str, list[float]] = {name: [] for name in reports}
            for run in range(runs):
                # Each goes first every other run: neither always builds on the other's cache.
                for name, daily in list(reports.items())[:: 1 if run % 2 else -1]:
                    started = time.perf_counter()
                    built = await daily.build(DAY)
                    timings[name].append(time.perf_counter() - started)
                    if name == "with_storage":
                        report = built
        medians = {name: statistics.median(times) for name, times in timings.items()}
        return {
            "readings": rows,
            "median_s": round(medians["with_storage"], 3),
            "max_s": round(max(timings["with_storage"]), 3),
            "without_storage_median_s": round(medians["without_storage"], 3),
            "storage_ratio": round(medians["with_storage"] / medians["without_storage"], 3),
            "stations_with_rain": sum(1 for s in report.stations if s.rain_mm is not None),
            "medium_reservoirs": len(report.storage),
            "with_storage": sum(1 for r in report.storage if r.storage is not None),
        }

    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    storage.add_option(parser)
    parser.add_argument("--runs", type=int, default=5, help="reports built per mode and variant")
    args = parser.parse_args()
    stations = generate_stations(STATIONS, seed=1)
    registry = Registry.of(stations, curves=generate_curves(stations, seed=1))
    results = storage.each_mode(
        args.timescaledb, lambda url, mode: measure(url, mode, registry, args.runs)
    )
    print(json.dumps({"stations": STATIONS, "build": results, "goal_s": 1.0}, indent=2))


if __name__ == "__main__":
    main()
