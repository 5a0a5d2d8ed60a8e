"""End-to-end ingest throughput: gateway publisher -> Mosquitto -> ``hydro ingest`` -> PostgreSQL.

Prints one JSON object. Everything runs on this machine, on throw-away servers in a temporary
folder, measured in the same run against:

- the ceiling: ``psql \\copy`` of the same rows straight into the same (station, time)-keyed table;
- the naive baseline: a subscriber that INSERTs and commits each reading;
- hydro, twice: with the publisher running at full speed beside it (live), and draining the same
  volume that queued at the broker while it was down (backlog, as after an outage).

All three in each storage mode (``--timescaledb``: both where the extension is installed), keyed
by mode in the JSON.

    python3 -m benchmarks.bench_ingest                   # 1,000,000 readings, 100 per message
    python3 -m benchmarks.bench_ingest --readings 200000 --per-message 12 --timescaledb off
    python3 -m benchmarks.bench_ingest --variant without_rainfall_hourly --timescaledb off  # cost
    python3 -m benchmarks.bench_ingest --baseline /tmp/main --rounds 3   # a change, against main
    python3 -m benchmarks.bench_ingest --with-evaluation   # hydro run: evaluation beside ingest

Beside each hydro run's rate: the CPU time each process took over it, in µs per reading (hydro,
the PostgreSQL server, Mosquitto, the publisher), which shows where a 2-core machine's time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import psycopg
import yaml

from benchmarks import storage
from hydro.local import LocalMosquitto, LocalPostgres
from hydro.models import Station, StationKind
from hydro.stations import generate_stations, write_stations_csv

REPO = Path(__file__).resolve().parent.parent
PREFIX = "bench"
JOURNAL = os.environ.get("BENCH_JOURNAL", "true") == "true"  # the hand-over to alerting
REFERENCE_STATIONS = 6951


def readings(stations: list[Station], total: int) -> Iterator[tuple[Station, dt.datetime, float]]:
    """``total`` distinct (station, time) readings, 5 minutes apart, most recent last."""
    steps = -(-total // len(stations))
    start = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(
        minutes=5 * steps
    )
    produced = 0
    for step in range(steps):
        moment = start + dt.timedelta(minutes=5 * step)
        for index, station in enumerate(stations):
            if produced == total:
                return
            yield station, moment, 800.0 + (index % 97) / 10 + step / 1000
            produced += 1


def messages(stations: list[Station], total: int, per_message: int) -> list[tuple[str, bytes]]:
    """Payloads grouped by gateway, ``per_message`` readings each, as gateways batch them."""
    by_gateway: dict[str, list[dict[str, object]]] = {}
    out: list[tuple[str, bytes]] = []
    for station, moment, value in readings(stations, total):
        field = "rainfall" if station.kind is StationKind.RAIN else "water_level"
        pending = by_gateway.setdefault(station.gateway or "any", [])
        pending.append({"station": station.code, "time": moment.isoformat(), field: value % 50})
        if len(pending) == per_message:
            out.append((_topic(station.gateway), json.dumps({"readings": pending}).encode()))
            by_gateway[station.gateway or "any"] = []
    for gateway, pending in by_gateway.items():
        if pending:
            out.append((_topic(gateway), json.dumps({"readings": pending}).encode()))
    return out


def _topic(gateway: str | None) -> str:
    return f"{PREFIX}/{gateway}/readings"


async def publish(port: int, payloads: list[tuple[str, bytes]], window: int = 256) -> float:
    """Publishes QoS 1 with up to ``window`` unacknowledged messages; returns seconds taken."""
    started = time.perf_counter()
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier="bench-publisher", max_inflight_messages=window
    ) as client:
        client.pending_calls_threshold = window + 1  # the window is intended, not a leak
        pending: set[asyncio.Task[None]] = set()
        for topic, payload in payloads:
            if len(pending) >= window:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            pending.add(asyncio.create_task(client.publish(topic, payload, qos=1)))
        await asyncio.gather(*pending)
    return time.perf_counter() - started


async def forget_session(port: int, client_id: str) -> None:
    """Ends a persistent session: left, it would queue every message published later in the
    run (the other storage mode's naive and backlog volumes) and hand them all to the next
    ``hydro ingest`` of that name, measured as if they were its own."""
    async with aiomqtt.Client("127.0.0.1", port, identifier=client_id, clean_session=True):
        pass


def publish_only(port: int, path: Path) -> None:
    """The publisher process: says when it starts, and at the end the CPU seconds it spent."""
    payloads = [(t, p.encode()) for t, p in json.loads(path.read_text())]
    print("publishing", flush=True)
    before = _own_cpu_seconds()
    asyncio.run(publish(port, payloads))
    print(f"cpu {_own_cpu_seconds() - before}", flush=True)


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat's fields after the command name (field 3 onwards); [] once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return text[text.rindex(")") + 2 :].split()


def _cpu(fields: list[str], *, reaped: bool = False) -> float:
    """utime + stime (and what reaped children took, for the postmaster) in seconds."""
    if not fields:
        return 0.0
    ticks = sum(int(fields[i]) for i in ((11, 12, 13, 14) if reaped else (11, 12)))
    return ticks / _TICKS


def cpu_seconds(hydro_pid: int, server: LocalPostgres, broker: LocalMosquitto) -> dict[str, float]:
    """CPU seconds so far of hydro, the whole PostgreSQL server and the broker."""
    postmaster = int((server.data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
    postgres = _cpu(_stat(postmaster), reaped=True)
    broker_conf = str(broker.data_dir / "mosquitto.conf").encode()
    mosquitto = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields and int(fields[1]) == postmaster:
            postgres += _cpu(fields)
        elif fields and broker_conf in _cmdline(entry):
            mosquitto += _cpu(fields)
    return {"hydro": _cpu(_stat(hydro_pid)), "postgres": postgres, "mosquitto": mosquitto}


def _cmdline(entry: Path) -> bytes:
    try:
        return (entry / "cmdline").read_bytes()
    except OSError:
        return b""


def count(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM readings").fetchone()
    return int(row[0]) if row else 0


# What each ``--variant`` changes in the schema ``hydro db migrate`` made, to measure what a part
# of it costs the writer: the live run is repeated with the change, interleaved in the same run.
# ``hydro ingest`` migrates at start, so what is taken away must still look present: the
# rainfall_hourly triggers give way to ones of the same names that do nothing and keep no
# transition tables (one empty call per statement).
VARIANTS = {
    "without_rainfall_hourly": """
CREATE OR REPLACE FUNCTION rainfall_hourly_apply() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN RETURN NULL; END $$;
DO $$ DECLARE event text; BEGIN
    FOREACH event IN ARRAY ARRAY['insert', 'update', 'delete', 'truncate'] LOOP
        EXECUTE format('DROP TRIGGER readings_rainfall_hourly_%s ON readings', event);
        EXECUTE format('CREATE TRIGGER readings_rainfall_hourly_%s AFTER %s ON readings'
            ' FOR EACH STATEMENT EXECUTE FUNCTION rainfall_hourly_apply()', event, event);
    END LOOP;
END $$
""",
}


def fresh_database(server: LocalPostgres, name: str, mode: str, variant: str = "") -> str:
    server.drop_database(name)
    url = server.create_database(name)
    subprocess.run(
        [sys.executable, "-m", "hydro", "db", "migrate"],
        env={**os.environ, "HYDRO_DATABASE__URL": url, "HYDRO_DATABASE__TIMESCALEDB": mode},
        check=True,
        capture_output=True,
    )
    if variant:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(VARIANTS[variant])  # type: ignore[arg-type]
    return url


def ceiling(
    server: LocalPostgres, mode: str, stations: list[Station], total: int, folder: Path
) -> float:
    url = fresh_database(server, "bench_ceiling", mode)
    csv_path = folder / "rows.csv"
    with csv_path.open("w") as out:
        for station, moment, value in readings(stations, total):
            wl, rain = ("", value % 50) if station.kind is StationKind.RAIN else (value % 50, "")
            out.write(f"{station.code},{moment.isoformat()},{wl},,{rain},\n")
    started = time.perf_counter()
    subprocess.run(
        [
            "psql",
            url,
            "-q",
            "-c",
            f"\\copy readings (station, time, water_level, flow, rainfall, battery_v)"
            f" FROM '{csv_path}' CSV",
        ],
        check=True,
    )
    elapsed = time.perf_counter() - started
    assert count(url) == total
    return total / elapsed


def naive(
    broker: LocalMosquitto, server: LocalPostgres, mode: str, payloads: list[tuple[str, bytes]]
) -> float:
    """One INSERT and one COMMIT per reading, acknowledging on receipt."""
    url = fresh_database(server, "bench_naive", mode)
    total = sum(len(json.loads(p)["readings"]) for _, p in payloads)

    async def run() -> float:
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="bench-naive") as sub:
            await sub.subscribe(f"{PREFIX}/+/readings", qos=1)
            publisher = asyncio.create_task(publish(broker.port, payloads))
            started = time.perf_counter()
            stored = 0
            async with await psycopg.AsyncConnection.connect(url) as conn:
                async for message in sub.messages:
                    assert isinstance(message.payload, bytes)
                    for r in json.loads(message.payload)["readings"]:
                        await conn.execute(
                            "INSERT INTO readings (station, time, water_level, rainfall)"
                            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                            (r["station"], r["time"], r.get("water_level"), r.get("rainfall")),
                        )
                        await conn.commit()
                        stored += 1
                    if stored >= total:
                        break
            await publisher
            return total / (time.perf_counter() - started)

    return asyncio.run(run())


@dataclass(frozen=True)
class Setup:
    """What one series of hydro runs measures: a schema change (a key of VARIANTS), the checkout
    hydro runs from (another one's code against this one's), and the command."""

    schema: str = ""
    checkout: Path = REPO
    command: str = "ingest"
    batch_size: int | None = None  # ingest.batch_size; None: the default


def hydro_ingest(
    broker: LocalMosquitto,
    server: LocalPostgres,
    payloads: list[tuple[str, bytes]],
    *,
    mode: str,
    registry_csv: Path,
    total: int,
    folder: Path,
    backlog: bool,
    setup: Setup,
    label: str = "",
) -> dict[str, object]:
    name = "bench_backlog" if backlog else "bench_live"
    url = fresh_database(server, name, mode, setup.schema)
    config = folder / f"{name}.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "mqtt": {"port": broker.port, "topic_prefix": PREFIX, "client_id": name},
                "database": {"url": url, "timescaledb": mode},
                "registry": {"stations": str(registry_csv)},
                "logging": {"level": "INFO"},
                "ingest": {
                    "journal": JOURNAL,
                    **({} if setup.batch_size is None else {"batch_size": setup.batch_size}),
                },
                "alerting": {"rules": str(REPO / "alert_rules")},
                "api": {"enabled": False},
            }
        )
    )
    log = folder / f"{name}-{mode}-{label}.log"  # counted below: one per mode and setup
    log.unlink(missing_ok=True)

    def start() -> subprocess.Popen[bytes]:
        with log.open("ab") as handle:
            return subprocess.Popen(
                [sys.executable, "-m", "hydro", "--config", str(config), setup.command],
                stdout=handle,
                stderr=subprocess.STDOUT,
                cwd=setup.checkout,  # python -m imports hydro from here
            )

    def wait_subscribed(process: subprocess.Popen[bytes], before: int) -> None:
        """Until the log shows one more subscription than ``before``: publishing earlier loses."""
        while log.read_text(errors="replace").count("subscribed to") <= before:
            if process.poll() is not None:
                raise SystemExit(f"hydro ingest exited:\n{log.read_text()}")
            time.sleep(0.05)

    process = start()
    wait_subscribed(process, 0)
    publish_seconds = None
    if backlog:
        process.terminate()
        process.wait(30)
        publish_seconds = asyncio.run(publish(broker.port, payloads))
        process = start()
        wait_subscribed(process, 1)
        started = time.perf_counter()
    else:
        # A separate process, as gateways are; the clock starts when it starts publishing.
        publisher = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.bench_ingest",
                "--publish-only",
                str(broker.port),
                str(folder / "payloads.json"),
            ],
            stdout=subprocess.PIPE,
            cwd=REPO,
        )
        assert publisher.stdout is not None
        publisher.stdout.readline()  # "publishing"
        started = time.perf_counter()
    cpu_before = cpu_seconds(process.pid, server, broker)
    while count(url) < total:
        if process.poll() is not None:
            raise SystemExit(f"hydro ingest exited:\n{log.read_text()}")
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    cpu = {
        process_name: seconds - cpu_before[process_name]
        for process_name, seconds in cpu_seconds(process.pid, server, broker).items()
    }
    if not backlog:
        publisher.wait(60)
        assert publisher.stdout is not None
        cpu["publisher"] = float(publisher.stdout.read().split()[-1])  # its last line
    peak_kib = _peak_memory_kib(process.pid)
    process.terminate()
    process.wait(30)
    asyncio.run(forget_session(broker.port, name))
    result: dict[str, object] = {
        "readings_per_s": round(total / elapsed),
        "seconds": round(elapsed, 2),
        "peak_rss_mb": round(peak_kib / 1024, 1),
        "cpu_us_per_reading": {key: round(s / total * 1e6, 2) for key, s in cpu.items()},
    }
    if publish_seconds is not None:
        result["publish_readings_per_s"] = round(total / publish_seconds)
    return result


def _median_run(runs: list[dict[str, object]]) -> dict[str, object]:
    """The run of median rate, with every run's rate beside it."""
    ordered = sorted(runs, key=_rate)
    return {**ordered[len(ordered) // 2], "rates": list(map(_rate, runs))}


def _rate(run: dict[str, object]) -> float:
    rate = run["readings_per_s"]
    assert isinstance(rate, int | float)
    return rate


def _peak_memory_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--per-message", type=int, default=100)
    parser.add_argument("--stations", type=int, default=REFERENCE_STATIONS)
    parser.add_argument("--naive-readings", type=int, default=20_000)
    storage.add_option(parser)
    parser.add_argument(
        "--variant",
        choices=tuple(VARIANTS),
        action="append",
        default=[],
        help="also run hydro live with this change to the schema, to measure what it costs",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="CHECKOUT",
        help="also run hydro (live and backlog) from this checkout of hydro, e.g. a `git worktree`"
        " of main, interleaved with this one: what a change does under the same load",
    )
    parser.add_argument(
        "--with-evaluation",
        action="store_true",
        help="also run `hydro run` live (the alert rules evaluated beside ingest, SMS to the"
        " console) interleaved with `hydro ingest`",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        action="append",
        default=[],
        help="also run hydro live with this ingest.batch_size",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="runs of each setup and of the ceiling, interleaved (median)",
    )
    parser.add_argument(
        "--publish-only", nargs=2, metavar=("PORT", "PAYLOADS"), help=argparse.SUPPRESS
    )
    return parser.parse_args()


def _setups(args: argparse.Namespace) -> dict[str, Setup]:
    """Every series of live runs, by name ("" is this checkout's ``hydro ingest``)."""
    setups = {"": Setup(), **{variant: Setup(schema=variant) for variant in args.variant}}
    if args.baseline:
        setups["baseline"] = Setup(checkout=args.baseline.resolve())
    if args.with_evaluation:
        setups["with_evaluation"] = Setup(command="run")
    for size in args.batch_size:
        setups[f"batch_size_{size}"] = Setup(batch_size=size)
    return setups


def main() -> None:
    args = _arguments()
    if args.publish_only:
        port, path = args.publish_only
        publish_only(int(port), Path(path))
        return

    modes = storage.modes(args.timescaledb)
    stations = generate_stations(args.stations, seed=1)
    payloads = messages(stations, args.readings, args.per_message)
    results: dict[str, dict[str, object]] = {}
    live_rates: list[float] = []
    setups = _setups(args)
    drained_setups = ("", "baseline") if args.baseline else ("",)
    with tempfile.TemporaryDirectory(prefix="hydro-bench-") as tmp:
        folder = Path(tmp)
        (folder / "payloads.json").write_text(json.dumps([(t, p.decode()) for t, p in payloads]))
        registry_csv = folder / "stations.csv"
        write_stations_csv(stations, registry_csv)
        server = LocalPostgres(folder / "postgres")
        broker = LocalMosquitto(folder / "mosquitto")
        server.start()
        broker.start()
        try:
            naive_payloads = messages(stations, args.naive_readings, args.per_message)
            for mode in modes:
                naive_rate = naive(broker, server, mode, naive_payloads)
                ingest = functools.partial(
                    hydro_ingest,
                    broker,
                    server,
                    payloads,
                    mode=mode,
                    registry_csv=registry_csv,
                    total=args.readings,
                    folder=folder,
                )
                runs: dict[str, list[dict[str, object]]] = {}
                backlogs: dict[str, list[dict[str, object]]] = {}
                ceilings: list[float] = []
                for _ in range(args.rounds):
                    # In every round, as the load of a shared machine changes from one to the next.
                    ceilings.append(ceiling(server, mode, stations, args.readings, folder))
                    for name, setup in setups.items():
                        run = ingest(backlog=False, setup=setup, label=name)
                        runs.setdefault(name, []).append(run)
                    for name in drained_setups:
                        run = ingest(backlog=True, setup=setups[name], label=name)
                        backlogs.setdefault(name, []).append(run)
                live = _median_run(runs.pop(""))
                copy_rate = sorted(ceilings)[len(ceilings) // 2]
                live_rates.append(_rate(live))
                results[storage.label(mode)] = {
                    "ceiling_psql_copy_per_s": round(copy_rate),
                    "ceilings": [round(rate) for rate in ceilings],
                    "naive_insert_commit_per_s": round(naive_rate),
                    "hydro_live": live,
                    "hydro_backlog_drain": _median_run(backlogs.pop("")),
                    "live_vs_ceiling": round(_rate(live) / copy_rate, 2),
                    "live_vs_naive": round(_rate(live) / naive_rate, 1),
                    **{
                        f"hydro_live_{name}": {
                            **(other := _median_run(others)),
                            "vs_ceiling": round(_rate(other) / copy_rate, 2),
                            "live_vs_this": round(_rate(live) / _rate(other), 2),
                        }
                        for name, others in runs.items()
                    },
                    **{
                        f"hydro_backlog_drain_{name}": _median_run(others)
                        for name, others in backlogs.items()
                    },
                }
        finally:
            broker.stop()
            server.stop()
    if len(live_rates) == 2:
        ratio: dict[str, object] = {
            "timescaledb_live_vs_postgresql": round(live_rates[1] / live_rates[0], 2)
        }
        results["ratio"] = ratio
    print(
        json.dumps(
            {
                "machine_cores": os.cpu_count(),
                "stations": args.stations,
                "readings": args.readings,
                "readings_per_message": args.per_message,
                **results,
                "goals": {
                    "readings_per_s": 50_000,
                    "vs_ceiling": 0.5,
                    "vs_naive": 10,
                    "peak_rss_mb": 300,
                    "timescaledb_live_vs_postgresql": 1.0,
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
