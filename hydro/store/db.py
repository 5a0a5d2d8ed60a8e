"""Connections to PostgreSQL, and the translation of psycopg's errors into hydro's.

Everything else in ``hydro.store`` borrows connections from the pool opened here and wraps its
work in :func:`translate_errors`, so no psycopg exception escapes the store.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

import psycopg
import psycopg_pool
from psycopg.abc import Params, QueryNoTemplate
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import AsyncRowFactory

from hydro.config import DatabaseConfig
from hydro.errors import StorageError, StorageUnavailable

# Errors after which the same work may succeed once the server is back: the connection dropped,
# the server is restarting or shutting down, or the pool had no connection to give in time.
_TRANSIENT = (
    psycopg.OperationalError,
    psycopg.errors.AdminShutdown,
    psycopg.errors.CannotConnectNow,
    psycopg_pool.PoolTimeout,
    psycopg_pool.TooManyRequests,
    psycopg.InterfaceError,
)

# The one connection type of the store: rows as tuples unless a cursor is given a row factory.
Connection = psycopg.AsyncConnection[tuple[object, ...]]
Row = TypeVar("Row")


# A batch that writes into compressed chunks (a backlog, corrections older than
# database.compress_after) makes TimescaleDB decompress each station's segment there, up to 1,000
# readings each; past 100,000 in one transaction it refuses with an error of the "insufficient
# resources" class, which the writer would take for an outage and retry forever: 101 stations
# corrected in one batch were enough. A batch is bounded by ingest.batch_size. Outside
# TimescaleDB the setting is an unused placeholder.
_SESSION_OPTIONS = "-c timescaledb.max_tuples_decompressed_per_dml_transaction=0"


def conninfo(config: DatabaseConfig) -> str:
    """The libpq connection string, with the password from the environment when one is set."""
    timeout = max(1, int(config.connect_timeout.total_seconds()))
    given = conninfo_to_dict(config.url).get("options")
    extra: dict[str, str | int] = {
        "connect_timeout": timeout,
        "application_name": "hydro",
        "options": f"{given} {_SESSION_OPTIONS}" if given else _SESSION_OPTIONS,
    }
    if config.password is not None:
        extra["password"] = config.password.get_secret_value()
    return make_conninfo(config.url, **extra)


def open_pool(config: DatabaseConfig) -> psycopg_pool.AsyncConnectionPool:
    """A pool that is not yet opened: ``async with open_pool(c) as pool`` waits for it."""
    return psycopg_pool.AsyncConnectionPool(
        conninfo(config),
        min_size=config.pool_min,
        max_size=config.pool_max,
        open=False,
        timeout=config.connect_timeout.total_seconds(),
        # A connection that died with the server must not be handed out again.
        check=psycopg_pool.AsyncConnectionPool.check_connection,
        kwargs={"autocommit": False},
    )


@contextlib.contextmanager
def translate_errors(doing: str) -> Iterator[None]:
    """Turns psycopg errors raised while ``doing`` into StorageUnavailable or StorageError."""
    try:
        yield
    except _TRANSIENT as exc:
        raise StorageUnavailable(f"database unavailable while {doing}: {exc}") from exc
    except psycopg.Error as exc:
        raise StorageError(f"database refused {doing}: {exc}") from exc


@contextlib.asynccontextmanager
async def connection(
    pool: psycopg_pool.AsyncConnectionPool, doing: str
) -> AsyncIterator[Connection]:
    """A pooled connection inside one transaction, committed on success."""
    with translate_errors(doing):
        async with pool.connection() as conn, conn.transaction():
            yield conn


async def fetch_all(
    conn: Connection,
    doing: str,
    rows: AsyncRowFactory[Row],
    query: QueryNoTemplate,
    params: Params | None = None,
) -> list[Row]:
    """Every row of ``query``, each made by ``rows`` (class_row, dict_row ...); errors
    translated as :func:`translate_errors` does."""
    with translate_errors(doing):
        cur = conn.cursor(row_factory=rows)
        await cur.execute(query, params)
        return await cur.fetchall()
