"""Daily report over 6,951 stations with a full hydrological day of 5-minute data; prints JSON.

A throw-away PostgreSQL is loaded with 288 readings per station (rain gauges report rainfall,
rivers and reservoirs water levels) plus the hours before the day that the rainfall windows look
back over, and the report is built several times: the queries and the pure build. Run in both
storage modes when TimescaleDB is installed (the continuous aggregates materialised, as their
policies keep them). The goal is under 1 s.

    python3 -m benchmarks.bench_report
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg

from hydro.config import Config
from hydro.local import LocalPostgres, timescaledb_installed
from hydro.models import StationKind
from hydro.reports.daily import day_bounds
from hydro.reports.service import DailyReports
from hydro.rules import load_rules
from hydro.stations import Registry, generate_stations
from hydro.store.db import open_pool
from hydro.store.schema import migrate

STATIONS = 6951
DAY = dt.date(2026, 5, 7)
ZONE = "Asia/Shanghai"
RULES = load_rules(Path(__file__).resolve().parent.parent / "alert_rules")


def load(url: str, registry: Registry) -> int:
    """COPYs the day (and the 12 h before it) straight into readings: the writer's own cost is
    bench_ingest's business."""
    start, _ = day_bounds(DAY, ZONE)
    times = [start + dt.timedelta(minutes=5 * i) for i in range(-144, 288)]
    rng = np.random.default_rng(1)
    rows = 0
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy("COPY readings (station, time, water_level, rainfall) FROM STDIN") as copy:
            for station in registry.stations:
                rain = station.kind is StationKind.RAIN
                base = station.warning_level or station.normal_level or 100.0
                values = (
                    rng.gamma(0.3, 2.0, len(times)) if rain else base - 1 + rng.random(len(times))
                )
                for t, v in zip(times, values.tolist(), strict=True):
                    copy.write_row(
                        (station.code, t, None if rain else v, round(v, 1) if rain else None)
                    )
                    rows += 1
        conn.commit()
        conn.autocommit = True
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
            for view in ("readings_hourly", "readings_daily"):
                conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")  # type: ignore[arg-type]
        conn.execute("ANALYZE readings")
    return rows


def measure(url: str, mode: str, registry: Registry, runs: int = 5) -> dict[str, object]:
    config = Config.model_validate(
        {"database": {"url": url, "timescaledb": mode}, "registry": {"default_timezone": ZONE}}
    )

    async def main() -> dict[str, object]:
        async with open_pool(config.database) as pool:
            async with pool.connection() as conn:
                await migrate(conn, config.database, ZONE)
            rows = await asyncio.to_thread(load, url, registry)
            reports = DailyReports(config, registry, RULES, pool)
            timings = []
            for _ in range(runs):
                started = time.perf_counter()
                report = await reports.build(DAY)
                timings.append(time.perf_counter() - started)
        return {
            "readings": rows,
            "median_s": round(statistics.median(timings), 3),
            "max_s": round(max(timings), 3),
            "stations_with_rain": sum(1 for s in report.stations if s.rain_mm is not None),
        }

    return asyncio.run(main())


def main() -> None:
    registry = Registry.of(generate_stations(STATIONS, seed=1))
    modes = ["off", *(["required"] if timescaledb_installed() else [])]
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        server = LocalPostgres(Path(folder))
        server.start()
        try:
            for mode in modes:
                url = server.create_database(f"bench_{mode}")
                results["postgresql" if mode == "off" else "timescaledb"] = measure(
                    url, mode, registry
                )
        finally:
            server.stop()
    print(json.dumps({"stations": STATIONS, "build": results, "goal_s": 1.0}, indent=2))


if __name__ == "__main__":
    main()
