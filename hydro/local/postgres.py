"""A PostgreSQL cluster of our own: initdb into a folder, start on a free loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psycopg
from psycopg import sql

from hydro.errors import LocalServiceError
from hydro.local.process import (
    find_binary,
    free_port,
    give_to,
    log_tail,
    run_as,
    service_user,
    wait_for_port,
)

_BIN_SEARCH = ("/usr/lib/postgresql/*/bin/{name}",)


def _binary(name: str) -> Path:
    return find_binary(name, [p.format(name=name) for p in _BIN_SEARCH], "postgresql")


def timescaledb_installed() -> bool:
    """True when the server binaries on this machine can load the timescaledb extension."""
    try:
        pg_config = _binary("pg_config")
    except LocalServiceError:
        return False
    result = subprocess.run(
        [str(pg_config), "--sharedir", "--pkglibdir"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return False
    sharedir, pkglibdir = result.stdout.split()[:2]
    return (Path(sharedir) / "extension" / "timescaledb.control").is_file() and (
        Path(pkglibdir) / "timescaledb.so"
    ).is_file()


class LocalPostgres:
    """One cluster in ``data_dir``; reusing the folder keeps its databases and its port.

    Where TimescaleDB is installed it is preloaded, unless ``preload_timescaledb`` is False at
    start: a server whose administrator installed the package but did not configure it.
    """

    def __init__(
        self, data_dir: Path, port: int | None = None, *, preload_timescaledb: bool = True
    ) -> None:
        self.data_dir = data_dir
        self._pgdata = data_dir / "pgdata"
        self._log = data_dir / "postgres.log"
        self._owner = service_user("postgres")
        self.has_timescaledb = timescaledb_installed()
        self.preload_timescaledb = preload_timescaledb
        port_file = data_dir / "port"
        if port is None and port_file.is_file():
            port = int(port_file.read_text())
        self.port = port or free_port()

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "port").write_text(str(self.port))
        if not (self._pgdata / "PG_VERSION").is_file():
            self._initdb()
        give_to(self.data_dir, self._owner)
        # pg_ctl hands -o to the server through a shell: '' is an empty list of libraries.
        options = [] if self.preload_timescaledb else ["-o", "-c shared_preload_libraries=''"]
        # After a SIGKILL the old server's children may hold shared memory for a moment.
        for attempt in range(20):
            try:
                self._pg_ctl("start", "-w", "-t", "60", "-l", str(self._log), *options)
                break
            except LocalServiceError:
                if attempt == 19:
                    raise
                time.sleep(0.25)
        if not wait_for_port(self.port, 30):
            raise LocalServiceError(f"PostgreSQL did not listen on port {self.port}")

    def stop(self) -> None:
        """Fast shutdown: sessions are disconnected, nothing committed is lost."""
        if self._pid() is not None:
            self._pg_ctl("stop", "-w", "-m", "fast")

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL the postmaster, as a power cut would."""
        pid = self._pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)

    def create_database(self, name: str, template: str | None = None) -> str:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(statement)
        return self.url(name)

    def database_exists(self, name: str) -> bool:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        return row is not None

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def _initdb(self) -> None:
        self._pgdata.mkdir(parents=True, exist_ok=True)
        give_to(self.data_dir, self._owner)
        run_as(
            [
                str(_binary("initdb")),
                "-D",
                str(self._pgdata),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            self._owner,
            "initdb",
        )
        settings = [
            f"port = {self.port}",
            "listen_addresses = '127.0.0.1'",
            "unix_socket_directories = ''",  # TCP only: socket paths in temp dirs grow too long
            "max_connections = 100",
            "shared_buffers = 256MB",
            "timezone = 'UTC'",
        ]
        if self.has_timescaledb:
            settings += [
                "shared_preload_libraries = 'timescaledb'",
                "timescaledb.telemetry_level = off",
            ]
        with (self._pgdata / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# hydro.local\n" + "\n".join(settings) + "\n")

    def _pg_ctl(self, *args: str) -> None:
        try:
            run_as([str(_binary("pg_ctl")), "-D", str(self._pgdata), *args], self._owner, "pg_ctl")
        except LocalServiceError as exc:
            raise LocalServiceError(f"{exc}\n{log_tail(self._log)}") from exc

    def _pid(self) -> int | None:
        try:
            pid = int((self._pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid
