"""Rainfall accumulation update per tick for 100k rain stations; prints JSON.

Each tick brings one new 5-minute report from every station (the worst case: a whole round
within one tick), stores it in the ring and computes the 1, 3, 6, 12 and 24 h windows ending at
it for every station, missing slots counted. A tenth of the stations miss a report now and
then. The goal is under 50 ms per tick.

    python3 benchmarks/bench_rainfall.py
"""

from __future__ import annotations

import json
import statistics
import time

import numpy as np

from hydro.rules.rainfall import RainRing, hundredths

WINDOWS = (12, 36, 72, 144, 288)  # 1, 3, 6, 12, 24 h in 5-minute slots


def measure(stations: int, ticks: int = 20) -> dict[str, float]:
    rng = np.random.default_rng(stations)
    ring = RainRing(stations, 288 + 288)  # the evaluator's span: a day of back-fill too
    head = 5_926_000
    ring.advance(head)
    everyone = np.arange(stations)
    for back in range(288):  # a full day already held
        ring.put(
            everyone, np.full(stations, head - back), hundredths(rng.gamma(0.3, 2.0, stations))
        )
    timings = []
    for _ in range(ticks):
        head += 1
        reporting = everyone[rng.random(stations) > 0.1]
        mm = hundredths(rng.gamma(0.3, 2.0, reporting.size))
        started = time.perf_counter()
        ring.advance(head)
        ring.put(reporting, np.full(reporting.size, head), mm)
        acc = ring.accumulations(reporting, np.full(reporting.size, head), WINDOWS)
        timings.append(time.perf_counter() - started)
    assert acc.total.shape == (len(WINDOWS), reporting.size)
    return {
        "median_ms": round(statistics.median(timings) * 1000, 1),
        "max_ms": round(max(timings) * 1000, 1),
    }


def main() -> None:
    results = {f"{n:,}": measure(n) for n in (10_000, 100_000)}
    print(
        json.dumps(
            {"per_tick": results, "windows_h": [1, 3, 6, 12, 24], "goal_ms_for_100k": 50}, indent=2
        )
    )


if __name__ == "__main__":
    main()
