"""``hydro demo`` end to end, as a newcomer runs it: a subprocess that starts its own PostgreSQL
and Mosquitto, plays a shortened storm, prints the SMS, serves the API, stops on Ctrl-C (SIGINT)
leaving no process behind, and resumes where it stopped without losing or doubling a reading."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from hydro.local import free_port
from hydro.simulate import outage_at_peak, overtop_in_storm
from hydro.stations import load_registry
from tests.support import fetch

REPO = Path(__file__).resolve().parents[2]
STEPS = 288  # a day of 5-minute reports, as the demo plays by default

pytestmark = pytest.mark.slow


@pytest.fixture
def demos() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The demo processes a test starts; any still running at the end (a failed test) is
    interrupted, so its servers stop too."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(60)


def start_demo(
    demos: list[subprocess.Popen[bytes]], workdir: Path, log: Path, port: int, *extra: str
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "hydro", "demo", "--workdir", str(workdir)),
                *("--steps", str(STEPS), "--port", str(port), *extra),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={k: v for k, v in os.environ.items() if not k.startswith("HYDRO_")},
        )
    demos.append(process)
    return process


def wait_for_text(process: subprocess.Popen[bytes], log: Path, text: str, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while text not in (shown := log.read_text(errors="replace")):
        assert process.poll() is None, shown
        assert time.monotonic() < deadline, f"no {text!r} in {seconds}s:\n{shown}"
        time.sleep(0.2)
    return shown


def interrupt(process: subprocess.Popen[bytes], log: Path, workdir: Path) -> None:
    """Ctrl-C, then: a clean exit and no process of the demo's servers left."""
    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 0, log.read_text(errors="replace")
    assert not (workdir / "postgres" / "pgdata" / "postmaster.pid").exists()
    strays = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(workdir) in command:
                strays.append(command)
    assert strays == []


def readings(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM readings").fetchone()
    return int(row[0]) if row else 0


def test_a_storm_from_gateway_to_sms_interrupted_and_resumed(
    tmp_path: Path, demos: list[subprocess.Popen[bytes]]
) -> None:
    workdir, log, port = tmp_path / "var", tmp_path / "demo.log", free_port()

    first = start_demo(demos, workdir, log, port, "--speed", "1200")  # a day in 72 s
    shown = wait_for_text(first, log, "SMS #", 90)
    token = re.search(r"#token=([\w-]+)", shown)
    database = re.search(r"HYDRO_DATABASE__URL=(\S+)", shown)
    assert token
    assert database
    headers = {"Authorization": f"Bearer {token[1]}"}
    summary = httpx.get(f"http://127.0.0.1:{port}/api/v1/summary", headers=headers, timeout=10)
    assert summary.status_code == 200
    assert summary.json()["stations"] == 90
    duty = httpx.get(f"http://127.0.0.1:{port}/api/v1/duty", headers=headers, timeout=10)
    assert [p["role"] for p in duty.json()["on_duty"]] == ["duty", "leader"]  # the sample's
    interrupt(first, log, workdir)  # mid-storm
    state = json.loads((workdir / "demo.json").read_text())
    assert 0 < state["done"] < STEPS

    again = start_demo(demos, workdir, log, port, "--speed", "0")  # neither --resume nor --reset
    assert again.wait(30) != 0
    assert "holds an earlier demo: hydro demo --resume continues it" in log.read_text()
    resumed = start_demo(demos, workdir, log, port, "--resume", "--speed", "3000")
    shown = wait_for_text(resumed, log, "-- storm over", 120)
    assert f"resumed at report {state['done'] + 1}" in shown
    shown = wait_for_text(resumed, log, "预警解除", 30)  # levels fell and alerts cleared
    assert "预警期间" in shown  # the gauge silent at its peak, during its alert...
    assert "未收到监测数据" in shown
    # 叫应: a red alert's persons called, a simulated person pressing 1, a ladder nobody
    # answered climbing to its county's 防汛负责人.
    assert re.search(r"CALL #\d+ to 技术责任人", shown)
    assert "【无人叫应】" in shown
    assert fetch(
        database[1],
        "SELECT count(*) > 0 FROM outbox o JOIN alerts a ON a.id = o.alert_id"
        " WHERE o.channel = 'voice' AND a.severity = 'red'",
    ) == [(True,)]
    assert fetch(
        database[1], "SELECT count(*) > 0 FROM confirmations WHERE answer = 'keypress'"
    ) == [(True,)]
    assert fetch(
        database[1],
        "SELECT count(*) > 0 FROM ladder_steps s JOIN outbox o ON o.id = ANY (s.outbox_ids)"
        " WHERE s.key LIKE '%:county:1' AND o.role = 'county' AND o.channel = 'voice'",
    ) == [(True,)]

    alerts = httpx.get(
        f"http://127.0.0.1:{port}/api/v1/alerts", params={"state": "cleared"}, headers=headers
    ).json()
    assert alerts["items"]
    stations = load_registry(REPO / "stations", "Asia/Shanghai").stations
    start, storm, seed = dt.datetime.fromisoformat(state["start"]), state["storm"], state["seed"]
    # The demo's storm jams a reservoir's spillway gate: the same twin finds its outage.
    overtop = overtop_in_storm(stations, start=start, steps=STEPS, storm=storm, seed=seed)
    outage = outage_at_peak(
        stations, start=start, steps=STEPS, storm=storm, seed=seed, overtop=overtop
    )
    assert outage is not None
    # Every report of the storm stored once, across the interruption: none lost, none doubled.
    # "storm over" means every report is published; under load ingest may still be committing.
    expected = STEPS * len(stations) - (outage.last - outage.first)
    deadline = time.monotonic() + 60
    while (stored := readings(database[1])) < expected and time.monotonic() < deadline:
        time.sleep(0.5)
    assert stored == expected
    interrupt(resumed, log, workdir)
    assert json.loads((workdir / "demo.json").read_text())["done"] == STEPS
