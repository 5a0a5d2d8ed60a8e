"""Operator API latency at provincial scale: 7,000 stations, 30 days of 5-minute readings (about
60 million rows) and 100,000 alerts, served by the real API on a throw-away PostgreSQL (with
TimescaleDB: hypertable, continuous aggregates, the chunks older than `database.compress_after`
compressed, as its policy would leave them: ``--compress-after``, by default the configuration's
default), in each storage mode (``--timescaledb``: both where the extension is installed), keyed
by mode.

Prints one JSON object: p50/p95/max milliseconds per request kind, over sequential requests
from one keep-alive client, measured in this process beside the server (2-core machine).

    python3 -m benchmarks.bench_api                       # 7,000 stations x 30 days
    python3 -m benchmarks.bench_api --stations 1000 --days 7 --requests 50   # a quick look
    python3 -m benchmarks.bench_api --timescaledb required --compress-after 2d
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import json
import random
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
from psycopg_pool import AsyncConnectionPool

from benchmarks import storage
from hydro import app
from hydro.api import listen
from hydro.config import Config
from hydro.local import LocalPostgres
from hydro.stations import generate_stations, write_stations_csv
from hydro.store.schema import StorageMode, storage_mode
from tests.support import api_in_thread

TOKEN = "bench-token-0123456789abcdef"
REPO = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load(
    url: str,
    codes: list[str],
    days: int,
    alerts: int,
    *,
    timescale: bool,
    compress_after: dt.timedelta | None,
) -> dict[str, float]:
    """Readings generated inside PostgreSQL (a day per statement), then alerts; returns timings."""
    timings: dict[str, float] = {}
    end = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    end -= dt.timedelta(minutes=end.minute % 5)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        started = time.perf_counter()
        for day in range(days, 0, -1):
            first = end - dt.timedelta(days=day)
            conn.execute(
                "INSERT INTO readings (station, time, water_level, rainfall, battery_v)"
                " SELECT s.code, t, 800 + 5 * sin(extract(epoch FROM t) / 86400 + s.n)"
                " + random() * 0.05,"
                " CASE WHEN random() < 0.2 THEN round((random() * 3)::numeric, 1) ELSE 0 END, 12.6"
                " FROM unnest(%s::text[]) WITH ORDINALITY s(code, n),"
                " generate_series(%s::timestamptz, %s::timestamptz - interval '5 minutes',"
                " interval '5 minutes') t ORDER BY t, s.n",  # in arrival order, as gateways send
                (codes, first, first + dt.timedelta(days=1)),
            )
            log(f"readings: day {days - day + 1}/{days}")
        timings["load_readings_s"] = time.perf_counter() - started
        conn.execute(
            "INSERT INTO station_latest (station, time, water_level, rainfall, battery_v,"
            " received_at) SELECT DISTINCT ON (station) station, time, water_level, rainfall,"
            " battery_v, now() FROM readings WHERE time > %s ORDER BY station, time DESC",
            (end - dt.timedelta(hours=1),),
        )
        rng = random.Random(7)
        rows = []
        for _ in range(alerts):
            code = rng.choice(codes)
            opened = end - dt.timedelta(seconds=rng.uniform(0, days * 86400))
            severity = rng.choice(("blue", "yellow", "yellow", "orange", "red"))
            rank = ("blue", "yellow", "orange", "red").index(severity) + 1
            rows.append((code, "river_level", "river_warning", rank, severity, opened))
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY alerts (station, family, rule_id, rank, severity, state, opened_at,"
                " cleared_at, peak_value) FROM STDIN"
            ) as copy,
        ):
            for code, family, rule, rank, severity, opened in rows:
                cleared = opened + dt.timedelta(hours=2)
                copy.write_row(
                    (code, family, rule, rank, severity, "cleared", opened, cleared, 801.0)
                )
        # The newest alert of 1,500 stations is still open.
        conn.execute(
            "UPDATE alerts SET state = 'open', cleared_at = NULL WHERE id IN ("
            " SELECT DISTINCT ON (station) id FROM alerts WHERE station = ANY(%s)"
            " ORDER BY station, opened_at DESC)",
            (rng.sample(codes, min(1500, len(codes))),),
        )
        if timescale:
            started = time.perf_counter()
            for view in ("readings_hourly", "readings_daily"):
                conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")
            timings["refresh_aggregates_s"] = time.perf_counter() - started
        if timescale and compress_after is not None:
            started = time.perf_counter()
            compressed = conn.execute(
                "SELECT count(compress_chunk(c, true))"
                " FROM show_chunks('readings', older_than => %s::interval) c",
                (compress_after,),
            ).fetchone()
            timings["compressed_chunks"] = compressed[0] if compressed else 0
            timings["compress_s"] = time.perf_counter() - started
        conn.execute("VACUUM ANALYZE")
    return timings


def measure(client: httpx.Client, paths: Callable[[int], str], requests: int) -> dict[str, float]:
    client.get(paths(0)).raise_for_status()  # warm the pool and the plan cache
    samples = []
    for index in range(requests):
        started = time.perf_counter()
        answer = client.get(paths(index))
        samples.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 2),
        "max_ms": round(samples[-1], 2),
        "bytes": len(answer.content),
    }


def on_the_wire(client: httpx.Client, path: str, requests: int) -> dict[str, object]:
    """Body bytes as sent and the time to take them, plain, gzip, and revalidated by ETag."""
    tag = client.get(path).headers["etag"]
    ways = {
        "identity": {"Accept-Encoding": "identity"},
        "gzip": {"Accept-Encoding": "gzip"},
        "if_none_match": {"Accept-Encoding": "gzip", "If-None-Match": tag},
    }
    figures: dict[str, object] = {}
    for way, headers in ways.items():
        samples = []
        for _ in range(requests):
            started = time.perf_counter()
            answer = client.get(path, headers=headers)
            samples.append((time.perf_counter() - started) * 1000)
        figures[way] = {
            "status": answer.status_code,
            "wire_bytes": answer.num_bytes_downloaded,
            "p50_ms": round(statistics.median(samples), 2),
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=7000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--compress-after",
        help="database.compress_after under TimescaleDB, e.g. 2d or null (default: its default)",
    )
    storage.add_option(parser)
    args = parser.parse_args()
    modes = storage.modes(args.timescaledb)
    results = {}
    with tempfile.TemporaryDirectory(prefix="hydro-bench-api-") as folder:
        stations = generate_stations(args.stations, seed=1)
        registry = Path(folder) / "stations.csv"
        write_stations_csv(stations, registry)
        server = LocalPostgres(Path(folder) / "pg")
        server.start()
        try:
            for mode in modes:
                url = server.create_database(f"bench_{mode}")
                config = Config.model_validate(
                    {
                        "database": {
                            "url": url,
                            "timescaledb": mode,
                            **(
                                {}
                                if args.compress_after is None
                                else {"compress_after": _duration(args.compress_after)}
                            ),
                        },
                        "registry": {"stations": str(registry)},
                        "alerting": {"rules": str(REPO / "alert_rules")},
                        "api": {"port": 0, "tokens": f"bench:viewer:{TOKEN}"},
                    }
                )
                results[storage.label(mode)] = run(config, [s.code for s in stations], args)
                server.drop_database(f"bench_{mode}")  # 60M rows: one mode's on disk at a time
        finally:
            server.stop()
    print(json.dumps(results, indent=2, ensure_ascii=False))


def _duration(text: str) -> str | None:
    """``--compress-after`` as config.yaml spells it: ``null`` never compresses."""
    return None if text == "null" else text


def run(config: Config, codes: list[str], args: argparse.Namespace) -> dict[str, object]:
    listener = listen("127.0.0.1", 0)
    facts: dict[str, object] = {}

    async def prepare(pool: AsyncConnectionPool) -> None:
        async with pool.connection() as conn:
            mode = await storage_mode(conn)
        facts["mode"] = str(mode)
        loading = functools.partial(
            load,
            timescale=mode is StorageMode.TIMESCALEDB,
            compress_after=config.database.compress_after,
        )
        facts.update(
            await asyncio.to_thread(loading, config.database.url, codes, args.days, args.alerts)
        )

    with api_in_thread(config, listener, prepare, ready_within=4 * 3600):
        return _measure_all(config, codes, args, listener, facts)


def _measure_all(
    config: Config,
    codes: list[str],
    args: argparse.Namespace,
    listener: socket.socket,
    facts: dict[str, object],
) -> dict[str, object]:
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    rng = random.Random(3)
    registry = app.load_stations(config)
    prefectures = sorted({s.prefecture for s in registry.stations})
    now = dt.datetime.now(dt.UTC)
    month_ago = (now - dt.timedelta(days=args.days)).isoformat()
    results: dict[str, object] = {
        "stations": len(codes),
        "days": args.days,
        "readings": len(codes) * args.days * 288,
        "alerts": args.alerts,
        **facts,
    }
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    ) as client:
        cursors: list[str] = []
        page = client.get("/api/v1/alerts", params={"limit": 50}).json()
        while page["next_cursor"] and len(cursors) < args.requests:
            cursors.append(page["next_cursor"])
            page = client.get("/api/v1/alerts", params={"limit": 50, "cursor": cursors[-1]}).json()

        def day_window(i: int) -> str:
            start = now - dt.timedelta(days=rng.uniform(1, args.days))
            return (
                f"/api/v1/alerts?from={start.isoformat()}"
                f"&to={(start + dt.timedelta(days=1)).isoformat()}"
            ).replace("+", "%2B")

        cases: dict[str, Callable[[int], str]] = {
            "healthz_baseline": lambda i: "/healthz",
            "alerts_newest_page": lambda i: "/api/v1/alerts?limit=50",
            "alerts_by_station": lambda i: f"/api/v1/alerts?station={rng.choice(codes)}",
            "alerts_by_prefecture_and_severity": lambda i: (
                f"/api/v1/alerts?prefecture={rng.choice(prefectures)}&severity=red"
            ),
            "alerts_open": lambda i: "/api/v1/alerts?state=open&limit=200",
            "alerts_one_day_window": day_window,
            "alerts_next_pages_by_cursor": lambda i: (
                f"/api/v1/alerts?limit=50&cursor={cursors[i % len(cursors)]}"
            ),
            "hydrograph_30d_raw": lambda i: (
                f"/api/v1/stations/{rng.choice(codes)}/readings?every=raw&from="
                + month_ago.replace("+", "%2B")
            ),
            "hydrograph_30d_hourly": lambda i: (
                f"/api/v1/stations/{rng.choice(codes)}/readings?every=1h&from="
                + month_ago.replace("+", "%2B")
            ),
            "summary": lambda i: "/api/v1/summary",
            "stations_full_list": lambda i: "/api/v1/stations",
            "stations_map_refresh": lambda i: "/api/v1/stations/status",
        }
        for name, paths in cases.items():
            log(f"measuring {name}")
            results[name] = measure(client, paths, args.requests)
        for path in ("/api/v1/stations", "/api/v1/stations/status"):
            log(f"measuring {path} on the wire")
            results[f"wire {path}"] = on_the_wire(client, path, args.requests)
    return results


if __name__ == "__main__":
    main()
