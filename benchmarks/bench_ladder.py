"""The 叫应 ladder under a flood: 300 reservoirs cross their 设计洪水位 (red, the default ladder:
call all three persons at once) within one tick, against a Twilio-compatible server. Prints JSON
per storage mode (``--timescaledb``): the time from publishing each station's reading to the
first call request for each of its persons (p50/p99 over persons), the provider's requests per
minute (calls and SMS apart) against the configured rates, and the most requests in any one
second (the pacing allows no burst above the rate).

Everything is real and local: Mosquitto, PostgreSQL, ``hydro run`` as its own process with the
twilio provider, and the test suite's Twilio-compatible HTTP server. Nobody answers, so ladders
also call again after 3 minutes while first calls still queue: those calls are counted in the
rates, not in the time to the first call.

    python3 -m benchmarks.bench_ladder [--timescaledb off|required|both] [--stations 300]
        [--calls-per-second 1] [--sms-per-second 10]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import datetime as dt
import itertools
import json
import statistics
import time
from collections import Counter

import aiomqtt

from benchmarks import storage
from benchmarks.local_hydro import hydro_running
from hydro.config import SmsConfig, VoiceConfig
from hydro.models import Station, StationKind
from hydro.stations import generate_stations
from tests.twilio_server import FakeTwilio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    storage.add_option(parser)
    parser.add_argument("--stations", type=int, default=300)
    parser.add_argument("--calls-per-second", type=float, default=VoiceConfig().calls_per_second)
    parser.add_argument(
        "--sms-per-second",
        type=float,
        default=SmsConfig.model_fields["rate_per_second"].default,
    )
    args = parser.parse_args()
    modes = storage.modes(args.timescaledb)
    reservoirs = [
        s for s in generate_stations(args.stations * 10, seed=5) if s.kind is StationKind.RESERVOIR
    ][: args.stations]
    rates = {"calls_per_second": args.calls_per_second, "sms_per_second": args.sms_per_second}
    results: dict[str, object] = {"stations": len(reservoirs), "configured": rates}
    for mode in modes:
        results[storage.label(mode)] = run(mode, reservoirs, rates)
    print(json.dumps(results, indent=2))


def run(mode: str, reservoirs: list[Station], rates: dict[str, float]) -> dict[str, object]:
    """One flood with ``hydro run`` on a fresh PostgreSQL: its figures."""
    with (
        FakeTwilio() as fake,
        hydro_running(
            reservoirs,
            mode,
            fake,
            sms={"rate_per_second": rates["sms_per_second"]},
            voice={"calls_per_second": rates["calls_per_second"]},
            # Calls need an address for their key presses; nobody presses here.
            api={"enabled": False, "public_url": "http://127.0.0.1:9"},
        ) as port,
    ):
        return asyncio.run(flood(reservoirs, port, fake, rates))


async def flood(
    reservoirs: list[Station], port: int, fake: FakeTwilio, rates: dict[str, float]
) -> dict[str, object]:
    """Publishes every station's red reading at once, waits for every person's first call."""
    published: dict[str, float] = {}  # phone -> when its station's reading was published
    async with aiomqtt.Client("127.0.0.1", port, identifier="ladder-gateway") as gateway:
        for station in reservoirs:
            assert station.design_flood_level is not None
            payload = {
                "station": station.code,
                "time": dt.datetime.now(dt.UTC).isoformat(),
                "water_level": station.design_flood_level + 0.5,
            }
            at = time.time()
            await gateway.publish(f"hydro/{station.gateway}/readings", json.dumps(payload), qos=1)
            for person in station.persons:
                published.setdefault(person.phone, at)
    started = min(published.values())
    deadline = time.time() + len(published) / rates["calls_per_second"] * 1.5 + 120
    while time.time() < deadline:
        if {c.to for c in fake.calls} >= published.keys():
            break
        await asyncio.sleep(0.5)
    first_call: dict[str, float] = {}
    for call in fake.calls:
        first_call.setdefault(call.to, call.at)
    waits = sorted(first_call[p] - published[p] for p in published if p in first_call)
    return {
        "persons": len(published),
        "persons_called": len(waits),
        "first_call_min_s": round(waits[0], 1) if waits else None,
        "first_call_p50_s": round(statistics.median(waits), 1) if waits else None,
        "first_call_p99_s": round(waits[int(0.99 * (len(waits) - 1))], 1) if waits else None,
        "first_call_max_s": round(waits[-1], 1) if waits else None,
        "calls": requests([c.at for c in fake.calls], started, rates["calls_per_second"]),
        "sms": requests([m.at for m in fake.received], started, rates["sms_per_second"]),
    }


def requests(times: list[float], started: float, per_second: float) -> dict[str, object]:
    """Requests per minute from the first publish, and the most in any window of one second."""
    ordered = sorted(times)
    per_minute = Counter(int((t - started) // 60) for t in ordered)
    busiest = max(
        (bisect.bisect_left(ordered, t + 1.0) - i for i, t in enumerate(ordered)), default=0
    )
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    return {
        "requests": len(ordered),
        "configured_per_minute": round(per_second * 60),
        "per_minute": [per_minute[m] for m in range(max(per_minute, default=-1) + 1)],
        "max_in_any_second": busiest,
        "configured_per_second": per_second,
        "min_gap_s": round(min(gaps), 3) if gaps else None,
    }


if __name__ == "__main__":
    main()
