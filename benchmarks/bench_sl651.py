"""SL 651 receiver throughput: simulated RTUs -> ``hydro gateway sl651`` -> Mosquitto ->
``hydro ingest`` -> PostgreSQL, each RTU on its own TCP connection sending one hourly report
(F4 twelve 5-minute rain amounts, F5 twelve 5-minute levels, 39/3B, 38: twelve readings).

Prints one JSON object: the pure decoder's rate (split + CRC + decode + conversion, one core);
with every RTU connected at once, the receiver's rate (frames answered per second, each answered
only after the broker's PUBACK) while ingest is stopped, then ingest's rate draining those
messages into the database, each stage measured alone on the machine; and the receiver's memory
with all connections open and at its peak. Goal: the receiver is never the bottleneck (its
readings/s at least twice ingest's).

    python3 benchmarks/bench_sl651.py                 # 7,000 RTUs
    python3 benchmarks/bench_sl651.py --rtus 1000
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import yaml

from hydro.gateway.sl651.convert import RainCounters, readings_of
from hydro.gateway.sl651.frame import BEIJING, Frame, Report, Splitter, decode
from hydro.gateway.sl651.rtu import Rtu, hourly_report
from hydro.gateway.sl651.server import address_of
from hydro.local import LocalMosquitto, LocalPostgres
from hydro.models import Station
from hydro.stations import generate_stations, write_stations_csv

PREFIX = "bench"


def frames(stations: list[Station]) -> list[bytes]:
    """One hourly report per station for the last full hour, levels and rain varying a little."""
    hour = dt.datetime.now(BEIJING).replace(minute=0, second=0, microsecond=0)
    out = []
    for index, station in enumerate(stations):
        levels = [800.0 + (index % 97) / 10 + step / 100 for step in range(12)]
        rains = [((index + step) % 7) / 10 for step in range(12)]
        address = address_of(station)
        assert address is not None
        out.append(
            hourly_report(
                station,
                address,
                serial=index,
                time=hour,
                levels=levels,
                rains=rains,
                battery_v=12.6,
            )
        )
    return out


def decoder_rate(data: list[bytes]) -> dict[str, float]:
    counters = RainCounters()
    readings = 0
    started = time.perf_counter()
    for frame_bytes in data:
        (frame,) = Splitter().feed(frame_bytes)
        assert isinstance(frame, Frame)
        report = decode(frame)
        assert isinstance(report, Report)
        readings += len(readings_of(report, frame.address, counters)[0])
    seconds = time.perf_counter() - started
    return {
        "frames_per_s": round(len(data) / seconds),
        "readings_per_s": round(readings / seconds),
    }


async def drive(port: int, data: list[bytes]) -> dict[str, float]:
    """Every RTU connected at once, then each sends its report and waits for the answer."""
    started = time.perf_counter()
    rtus = []
    for chunk in range(0, len(data), 500):  # the listen backlog, not the receiver, limits this
        rtus += await asyncio.gather(
            *(Rtu.connect("127.0.0.1", port) for _ in data[chunk : chunk + 500])
        )
    connected = time.perf_counter() - started
    print("connected", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    await asyncio.gather(*(rtu.send(frame) for rtu, frame in zip(rtus, data, strict=True)))
    answered = time.perf_counter() - started
    await asyncio.gather(*(rtu.close() for rtu in rtus))
    return {"connect_s": round(connected, 2), "answered_s": round(answered, 2)}


def _memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (the machine is shared: wall time is not)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM readings").fetchone()
    return int(row[0]) if row else 0


def start(command: list[str], config: Path, log: Path, marker: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "hydro", "--config", str(config), *command],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    while marker not in log.read_text(errors="replace"):
        if process.poll() is not None:
            raise SystemExit(f"hydro {' '.join(command)} exited:\n{log.read_text()}")
        time.sleep(0.05)
    return process


def end_to_end(data: list[bytes], registry_csv: Path, folder: Path) -> dict[str, object]:
    server = LocalPostgres(folder / "postgres")
    broker = LocalMosquitto(folder / "mosquitto")
    server.start()
    broker.start()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        url = server.create_database("bench_sl651")
        with socket.socket() as probe:  # a free port for the receiver
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        config = folder / "config.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "mqtt": {"port": broker.port, "topic_prefix": PREFIX, "client_id": "bench"},
                    "database": {"url": url, "timescaledb": "off"},
                    "registry": {"stations": str(registry_csv)},
                    "sl651": {"host": "127.0.0.1", "port": port, "idle_timeout": "1h"},
                }
            )
        )
        # ingest subscribes once (its session then queues at the broker) and stops, so the
        # receiver is measured alone; then ingest drains what it published, measured alone.
        ingest = start(["ingest"], config, folder / "ingest.log", "subscribed to")
        ingest.terminate()
        ingest.wait(30)
        gateway = start(["gateway", "sl651"], config, folder / "gateway.log", "listening on")
        processes.append(gateway)
        (folder / "frames.json").write_text(json.dumps([f.hex() for f in data]))
        driver = subprocess.Popen(
            [sys.executable, __file__, "--drive", str(port), str(folder / "frames.json")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert driver.stdin is not None
        assert driver.stdout is not None
        assert driver.stdout.readline().strip() == b"connected"
        connected_rss = _memory_kib(gateway.pid, "VmRSS:")
        cpu_before = _cpu_seconds(gateway.pid)
        driver.stdin.write(b"go\n")
        driver.stdin.flush()
        timings = json.loads(driver.stdout.readline())
        receiver_cpu = _cpu_seconds(gateway.pid) - cpu_before
        driver.wait(60)
        total = 12 * len(data)
        started = time.perf_counter()
        ingest = start(["ingest"], config, folder / "drain.log", "subscribed to")
        processes.append(ingest)
        while count(url) < total:
            if ingest.poll() is not None:
                raise SystemExit((folder / "drain.log").read_text())
            time.sleep(0.1)
        drained = time.perf_counter() - started
        ingest_cpu = _cpu_seconds(ingest.pid)
        return {
            "rtus_connected_at_once": len(data),
            "connect_all_s": timings["connect_s"],
            "receiver_frames_per_s": round(len(data) / timings["answered_s"]),
            "receiver_readings_per_s": round(total / timings["answered_s"]),
            "receiver_cpu_s": round(receiver_cpu, 2),
            "ingest_readings_per_s": round(total / drained),
            "ingest_cpu_s_with_start_up": round(ingest_cpu, 2),
            "readings_stored": count(url),
            "receiver_rss_mb_all_connected": round(connected_rss / 1024, 1),
            "receiver_peak_rss_mb": round(_memory_kib(gateway.pid, "VmHWM:") / 1024, 1),
        }
    finally:
        for process in processes:
            process.terminate()
            process.wait(30)
        broker.stop()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rtus", type=int, default=7000)
    parser.add_argument("--drive", nargs=2, metavar=("PORT", "FRAMES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # one socket per RTU, both ends
    if args.drive:
        port, path = args.drive
        data = [bytes.fromhex(h) for h in json.loads(Path(path).read_text())]
        print(json.dumps(asyncio.run(drive(int(port), data))), flush=True)
        return
    if hard < args.rtus + 100:
        raise SystemExit(f"open-file limit {hard} is below {args.rtus} connections")
    stations = generate_stations(args.rtus, seed=1)
    stations = [dataclasses.replace(s, gateway=None) for s in stations]
    data = frames(stations)
    with tempfile.TemporaryDirectory(prefix="hydro-bench-sl651-") as tmp:
        folder = Path(tmp)
        registry_csv = folder / "stations.csv"
        write_stations_csv(stations, registry_csv)
        decoder = decoder_rate(data)
        path = end_to_end(data, registry_csv, folder)
    receiver = path["receiver_readings_per_s"]
    assert isinstance(receiver, int)
    print(
        json.dumps(
            {
                "machine_cores": os.cpu_count(),
                "load_average_1m": round(os.getloadavg()[0], 2),
                "decoder_one_core": decoder,
                **path,
                "receiver_vs_ingest": round(receiver / int(str(path["ingest_readings_per_s"])), 2),
                "goals": {"receiver_vs_ingest": 2.0},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
