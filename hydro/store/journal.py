"""Taking the readings ingest has committed since the evaluator last looked, exactly once.

The evaluator deletes the journal rows it takes inside the transaction that records what it
derived from them: a crash before that commit puts them back, a commit means they are gone.
Only one evaluator works at a time (a transaction-scoped advisory lock); another hydro process
finds the lock held and skips its tick, which makes a second ``hydro run`` a hot standby.

A batch that journals readings also NOTIFYs ``hydro_journal`` in its transaction: every evaluator
LISTENing, in any process on any machine, hears of it once the batch commits, and never of a
batch rolled back.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg.conninfo import make_conninfo

from hydro.config import DatabaseConfig
from hydro.store.db import Connection, conninfo, translate_errors

_EVALUATOR_LOCK = 0x6879_6576  # "hyev"
_CHANNEL = "hydro_journal"
# A listener only reads: without keepalives a connection lost without a reset (a dead network
# path) would wait forever, and the evaluator with it would not know to fall back on its ticks.
_KEEPALIVES: dict[str, str | int] = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}

_TAKE = """
WITH taken AS (
    DELETE FROM ingest_journal RETURNING id, stations, times, water_levels, rainfalls
)
SELECT u.station, extract(epoch FROM u.time)::bigint, u.water_level, u.rainfall
FROM taken, unnest(taken.stations, taken.times, taken.water_levels, taken.rainfalls)
         AS u(station, time, water_level, rainfall)
ORDER BY taken.id
"""


@dataclass(frozen=True)
class JournalTake:
    """Readings in the order they were committed, roughly (the evaluator sorts them anyway);
    NaN where a reading has no such value."""

    stations: list[str]
    times: npt.NDArray[np.int64]  # Unix seconds
    water_levels: npt.NDArray[np.float64]
    rainfalls: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.stations)


async def lock_evaluation(conn: Connection) -> bool:
    """True when this transaction is now the only evaluator; False if another one is."""
    with translate_errors("locking the evaluation"):
        cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_EVALUATOR_LOCK,))
        row = await cur.fetchone()
    return bool(row and row[0])


async def announce_journal(conn: Connection) -> None:
    """Wakes the listening evaluators when the caller's transaction commits. PostgreSQL folds
    the notices of one transaction into one and drops them on rollback."""
    with translate_errors("announcing new readings"):
        await conn.execute(f"NOTIFY {_CHANNEL}")


@contextlib.asynccontextmanager
async def journal_notices(config: DatabaseConfig) -> AsyncIterator[AsyncIterator[None]]:
    """A connection of its own, outside the pool (it is never given back), LISTENing for
    committed journal entries: the iterator yields once per notice and raises
    StorageUnavailable when the connection is lost."""
    with translate_errors("listening for new readings"):
        info = make_conninfo(conninfo(config), application_name="hydro-wakeup", **_KEEPALIVES)
        conn = await psycopg.AsyncConnection.connect(info, autocommit=True)
        async with conn:
            await conn.execute(f"LISTEN {_CHANNEL}")
            yield _notices(conn)


async def _notices(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> AsyncIterator[None]:
    with translate_errors("listening for new readings"):
        async for _ in conn.notifies():
            yield None


async def take_journal(conn: Connection) -> JournalTake:
    """Every committed batch not taken yet; gone for good when the caller's transaction commits."""
    with translate_errors("taking the ingest journal"):
        cur = await conn.execute(_TAKE)
        rows = await cur.fetchall()
    return JournalTake(
        stations=[str(row[0]) for row in rows],
        times=np.array([row[1] for row in rows], dtype=np.int64),
        water_levels=np.array([row[2] for row in rows], dtype=float),
        rainfalls=np.array([row[3] for row in rows], dtype=float),
    )
