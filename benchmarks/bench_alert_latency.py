"""Latency from publishing a crossing reading to its SMS request reaching a Twilio-compatible
server: p50 and p99 over 200 crossings, with ``alerting.interval`` 1 s (evaluation is woken by
each commit; the tick is only the fallback), in each storage mode
(``--timescaledb``: both where the extension is installed). Prints JSON.

Everything is real and local: Mosquitto, PostgreSQL, ``hydro run`` as its own process with the
twilio provider, and the test suite's Twilio-compatible HTTP server.

    python3 -m benchmarks.bench_alert_latency [--timescaledb off|required|both]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import time

import aiomqtt

from benchmarks import storage
from benchmarks.local_hydro import hydro_running
from hydro.models import Station, StationKind
from hydro.stations import generate_stations
from tests.twilio_server import FakeTwilio

CROSSINGS = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    storage.add_option(parser)
    modes = storage.modes(parser.parse_args().timescaledb)
    rivers = [s for s in generate_stations(800, seed=5) if s.kind is StationKind.RIVER][:CROSSINGS]
    results: dict[str, object] = {"crossings": len(rivers), "alerting_interval_s": 1}
    for mode in modes:
        ordered = sorted(latencies(mode, rivers))
        results[storage.label(mode)] = {
            "crossings_answered": len(ordered),
            "p50_s": round(statistics.median(ordered), 3),
            "p99_s": round(ordered[int(0.99 * (len(ordered) - 1))], 3),
            "max_s": round(ordered[-1], 3),
        }
    print(json.dumps({**results, "goal_p99_s": 0.25}, indent=2))


def latencies(mode: str, rivers: list[Station]) -> list[float]:
    """Each crossing's time to its first SMS, with ``hydro run`` on a fresh PostgreSQL."""
    with (
        FakeTwilio() as fake,
        hydro_running(
            rivers,
            mode,
            fake,
            alerting={"interval": "1s"},
            sms={"rate_per_second": 1000, "concurrency": 16},
            api={"enabled": False},
        ) as port,
    ):
        return asyncio.run(cross(rivers, port, fake))


async def cross(rivers: list, port: int, fake: FakeTwilio) -> list[float]:  # type: ignore[type-arg]
    """Publishes one crossing every 50 ms; returns each one's time to its first SMS."""
    sent_at: dict[str, float] = {}
    first_phone = {s.persons[0].phone: s.code for s in rivers}
    async with aiomqtt.Client("127.0.0.1", port, identifier="latency-gateway") as gateway:
        for station in rivers:
            now = dt.datetime.now(dt.UTC).isoformat()
            payload = {
                "station": station.code,
                "time": now,
                "water_level": station.warning_level + 0.5,
            }
            sent_at[station.code] = time.time()
            await gateway.publish(f"hydro/{station.gateway}/readings", json.dumps(payload), qos=1)
            await asyncio.sleep(0.05)
    deadline = time.time() + 30
    while time.time() < deadline:
        arrived = {first_phone[m.to]: m.at for m in fake.received if m.to in first_phone}
        if len(arrived) == len(rivers):
            break
        await asyncio.sleep(0.1)
    return [arrived[code] - sent_at[code] for code in arrived]


if __name__ == "__main__":
    main()
