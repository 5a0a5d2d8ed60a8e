"""The simulator: a storm model that crosses levels only when asked, and contract payloads."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest

from hydro.config import IngestConfig
from hydro.ingest.validate import ValidationRules, judge_message
from hydro.models import StationKind
from hydro.simulate import Step, StormModel, step_messages
from hydro.stations import generate_stations

STATIONS = generate_stations(400, seed=11)
START = dt.datetime(2026, 6, 20, 0, 0, tzinfo=dt.UTC)


def levels(name: str) -> np.ndarray:
    return np.array([getattr(s, name) or np.nan for s in STATIONS], dtype=float)


def run(storm: float, steps: int = 288, seed: int = 5) -> list[Step]:
    model = StormModel(STATIONS, start=START, steps=steps, storm=storm, seed=seed)
    return [model.step() for _ in range(steps)]


def test_same_seed_same_storm() -> None:
    first, second = run(0.7, steps=20), run(0.7, steps=20)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.water_level, b.water_level)
        np.testing.assert_array_equal(a.rainfall, b.rainfall)


def test_calm_weather_crosses_no_level() -> None:
    steps = run(0.0)
    peak = np.max(np.array([s.water_level for s in steps]), axis=0)  # NaN: no gauge
    assert not np.any(peak >= levels("warning_level"))
    assert not np.any(peak > levels("normal_level"))


def test_a_storm_crosses_warning_and_some_guaranteed_levels() -> None:
    steps = run(1.0)
    peak = np.max(np.array([s.water_level for s in steps]), axis=0)  # NaN: no gauge
    rivers = np.array([s.kind is StationKind.RIVER for s in STATIONS])
    over_warning = np.sum(peak[rivers] >= levels("warning_level")[rivers])
    over_guaranteed = np.sum(peak[rivers] >= levels("guaranteed_level")[rivers])
    assert over_warning > over_guaranteed > 0
    rain = np.array([s.rainfall for s in steps])
    assert np.all(rain >= 0)
    assert rain.max() > 5  # it does rain
    # The storm passes: by the end levels are back near their calm baseline.
    assert np.nanmax(steps[-1].water_level[rivers] - levels("warning_level")[rivers]) < 0


def test_payloads_follow_the_gateway_contract() -> None:
    step = StormModel(STATIONS, start=START, steps=2, storm=0.5).step()
    messages = step_messages(STATIONS, step, topic_prefix="hydro", batch=30)
    assert all(len(json.loads(p)["readings"]) <= 30 for _, p in messages)
    rules = ValidationRules.from_config(IngestConfig(), "hydro")
    by_code = {s.code: s for s in STATIONS}
    accepted = 0
    for topic, payload in messages:
        verdict = judge_message(
            topic, payload, START + dt.timedelta(minutes=1), stations=by_code, rules=rules
        )
        assert verdict.rejections == []
        accepted += len(verdict.readings)
        assert {by_code[r.station].gateway for r in verdict.readings} == {topic.split("/")[1]}
    assert accepted == len(STATIONS)


@pytest.mark.slow
def test_demo_runs_a_storm_into_the_database_and_stops_cleanly(tmp_path: Path) -> None:
    workdir = tmp_path / "var"
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hydro",
                "demo",
                "--workdir",
                str(workdir),
                "--steps",
                "24",
                "--speed",
                "0",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parent.parent,
            env={k: v for k, v in os.environ.items() if not k.startswith("HYDRO_")},
        )
    deadline = time.monotonic() + 90
    while "simulation finished" not in log.read_text(errors="replace"):
        assert demo.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    url = next(
        word.removeprefix("HYDRO_DATABASE__URL=")
        for word in log.read_text().split()
        if word.startswith("HYDRO_DATABASE__URL=")
    )
    expected = 24 * 90  # the sample registry's stations
    while True:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM readings").fetchone()
        if row == (expected,) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert row == (expected,)
    demo.send_signal(signal.SIGINT)
    assert demo.wait(60) == 0, log.read_text()
    # Every server it started has stopped: nothing listens on its ports any more.
    for name in ("postgres", "mosquitto"):
        port = int((workdir / name / "port").read_text())
        result = subprocess.run(
            ["ss", "-ltn", f"sport = :{port}"], capture_output=True, text=True, check=False
        )
        assert f":{port}" not in result.stdout
