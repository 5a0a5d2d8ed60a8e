"""A manual SMS to every person of the largest prefecture of the 6,951-station registry (about
2,300 persons); prints JSON.

Preview: the recipients picked from the registry's indexes, duplicates removed, each person's
text filled with their name and stations, its characters and segments counted, the confirmation
digest (pure, no database; the goal is p95 under 200 ms). Send: from the call to every row
queued and committed (preview again, the ``manual_sends`` record and one COPY into the outbox),
on a throw-away PostgreSQL, in each storage mode (the outbox is a plain table in both). And the
preview as the API answers it, JSON of every message included (in process, no network).

    python3 -m benchmarks.bench_manual_sms [--timescaledb off|required|both] [--runs 50]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
from collections import Counter
from pathlib import Path

import httpx
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr

from benchmarks import storage
from hydro import app
from hydro.api import create_api
from hydro.config import ApiConfig, Config
from hydro.desk.compose import Limits, compose
from hydro.desk.manual import ManualSms, SmsRequest
from hydro.desk.recipients import Audience, AudienceKind, Directory
from hydro.rules import load_rules
from hydro.stations import Registry, generate_stations

STATIONS = 6951
ZONE = "Asia/Shanghai"
TEXT = "{name}您好: 气象台预报今夜{station}一带有大到暴雨, 请加强巡查, 发现险情立即报告。"
RULES = load_rules(Path(__file__).resolve().parent.parent / "alert_rules")


def _ms(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[max(0, round(0.95 * len(ordered)) - 1)] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def preview(directory: Directory, audience: Audience, runs: int) -> dict[str, object]:
    limits = Limits("【防汛】", 500)
    timings, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = compose(TEXT, directory.addressees(audience), audience, limits)
        timings.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return {
        "recipients": result.recipients,
        "segments": result.segments,
        **_ms(timings),
        # CPU time of this process: what the preview costs when the machine is not shared.
        "cpu": _ms(cpu),
        "goal_p95_ms": 200,
    }


def send(
    url: str, mode: str, registry: Registry, audience: Audience, runs: int
) -> dict[str, object]:
    async def main() -> dict[str, object]:
        async with storage.migrated(url, mode, ZONE) as (config, pool):
            desk = ManualSms(
                config.sms.model_copy(update={"confirm_above": 10_000}),
                Directory(registry, {}),
                RULES,
                pool,
                list,
                frozenset(),
            )
            timings = []
            for run in range(runs):
                started = time.perf_counter()
                sent = await desk.send(
                    SmsRequest(audience, TEXT),
                    written_by="bench",
                    reason=f"run {run}",
                    confirm=None,
                )
                timings.append(time.perf_counter() - started)
            async with pool.connection() as conn:
                cur = await conn.execute("SELECT count(*) FROM outbox")
                row = await cur.fetchone()
            api = await api_preview(config, registry, pool, audience, runs)
        assert row is not None
        queued = {"rows_per_send": sent.preview.recipients, "rows": row[0], **_ms(timings)}
        return {"send_to_queued": queued, "api_preview": api}

    return asyncio.run(main())


async def api_preview(
    config: Config,
    registry: Registry,
    pool: AsyncConnectionPool,
    audience: Audience,
    runs: int,
) -> dict[str, object]:
    """POST /api/v1/sms/preview in process: the preview and its 2,300 messages as JSON."""
    token = "bench:operator:bench-token-0123456789"
    config = config.model_copy(update={"api": ApiConfig(tokens=SecretStr(token))})
    roster = app.load_duty_roster(config)
    api = create_api(app.api_context(config, pool, registry, RULES, roster))
    headers = {"Authorization": "Bearer bench-token-0123456789"}
    body = {audience.kind.value: audience.value, "text": TEXT}
    timings = []
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://hydro") as client:
        for _ in range(runs):
            started = time.perf_counter()
            answer = await client.post("/api/v1/sms/preview", json=body, headers=headers)
            answer.raise_for_status()
            timings.append(time.perf_counter() - started)
    return {"bytes": len(answer.content), **_ms(timings)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    storage.add_option(parser)
    parser.add_argument("--runs", type=int, default=50, help="previews timed (sends: a fifth)")
    args = parser.parse_args()
    storage.modes(args.timescaledb)  # refuses TimescaleDB where it is not installed, first
    registry = Registry.of(generate_stations(STATIONS))
    # As hydro run does once the registry is loaded: the collector stops walking it (without,
    # a full collection during a preview adds about 80 ms of CPU).
    gc.freeze()
    sizes = Counter(s.prefecture for s in registry.stations)
    largest = max(sizes, key=sizes.__getitem__)
    audience = Audience(AudienceKind.PREFECTURE, largest)
    directory = Directory(registry, {})
    results: dict[str, object] = {
        "stations": STATIONS,
        "prefecture": {"name": largest, "stations": sizes[largest]},
        "preview": preview(directory, audience, args.runs),
    }
    runs = max(1, args.runs // 5)
    results["database"] = storage.each_mode(
        args.timescaledb, lambda url, mode: send(url, mode, registry, audience, runs)
    )
    print(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
