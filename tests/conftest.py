"""Fixtures: real PostgreSQL and Mosquitto servers on free ports, and a clean environment."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from hydro.local import LocalMosquitto, LocalPostgres, timescaledb_installed
from tests.support import mark_test_start

_names = itertools.count()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own HYDRO_* settings must not leak into tests."""
    for name in list(os.environ):
        if name.startswith("HYDRO_"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _test_start() -> None:
    mark_test_start()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Commands run in-process point the root logger at the test's captured stderr, which
    closes with the test: later log lines (a server thread's) must not go there."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


LAYERS = ("unit", "services", "e2e")
"""The folders under tests/, each also a marker: ``pytest -m unit`` runs the fast layer."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if not item.path.is_relative_to(here):
            continue
        layer = item.path.relative_to(here).parts[0]
        if layer not in LAYERS:
            # Unplaced, a test would escape every ``-m <layer>`` run without anyone noticing.
            raise pytest.UsageError(
                f"{item.nodeid}: put the file in tests/unit/ (no server), tests/services/ "
                "(real PostgreSQL, Mosquitto or Twilio server in-process) or tests/e2e/ "
                "(hydro processes, the demo, the browser)"
            )
        item.add_marker(layer)
    if timescaledb_installed():
        return
    skip = pytest.mark.skip(
        reason="timescaledb extension is not installed in this PostgreSQL "
        "(no timescaledb.control in pg_config --sharedir); plain PostgreSQL is tested instead"
    )
    for item in items:
        if "timescaledb" in item.keywords:
            item.add_marker(skip)


_Server = TypeVar("_Server", LocalMosquitto, LocalPostgres)


def _serving(server: _Server) -> Iterator[_Server]:
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def local_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPostgres]:
    yield from _serving(LocalPostgres(tmp_path_factory.mktemp("postgres")))


@pytest.fixture(scope="session")
def local_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMosquitto]:
    yield from _serving(LocalMosquitto(tmp_path_factory.mktemp("mosquitto")))


@pytest.fixture
def pg_url(local_postgres: LocalPostgres) -> Iterator[str]:
    """A fresh, empty database for one test."""
    name = f"test_{os.getpid()}_{next(_names)}"
    url = local_postgres.create_database(name)
    yield url
    local_postgres.drop_database(name)


@pytest.fixture
def mqtt_topic_prefix(request: pytest.FixtureRequest) -> str:
    """Tests share the session broker; a prefix of their own keeps their messages apart."""
    return f"t{next(_names)}"


def _private_servers(
    kind: Callable[[Path], _Server], folder: Path
) -> Iterator[Callable[[], _Server]]:
    started: list[_Server] = []

    def make() -> _Server:
        server = kind(folder / f"server-{len(started)}")
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[[], LocalMosquitto]]:
    """Private brokers, for tests that restart or kill one."""
    yield from _private_servers(LocalMosquitto, tmp_path)


@pytest.fixture
def postgres_factory(tmp_path: Path) -> Iterator[Callable[[], LocalPostgres]]:
    """Private clusters, for tests that stop or kill one."""
    yield from _private_servers(LocalPostgres, tmp_path)


@pytest.fixture
def own_cluster(postgres_factory: Callable[[], LocalPostgres]) -> tuple[LocalPostgres, str]:
    """A private cluster and the URL of its empty database ``hydro``, for tests that stop it."""
    cluster = postgres_factory()
    return cluster, cluster.create_database("hydro")
