"""Taking the readings ingest has committed since a consumer last looked, exactly once.

A consumer (the alert evaluator) takes and advances inside one transaction together with what
it derives from the readings: a crash before its commit means the same readings are taken again,
a commit means they are never taken again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import psycopg

from hydro.store.db import translate_errors

_TAKE = """
SELECT u.station, extract(epoch FROM u.time)::bigint, u.water_level, u.rainfall
FROM ingest_journal j,
     unnest(j.stations, j.times, j.water_levels, j.rainfalls)
         AS u(station, time, water_level, rainfall)
WHERE j.xid >= %(since)s::text::xid8 AND j.xid < %(until)s::text::xid8
ORDER BY j.xid, j.id
"""


@dataclass(frozen=True)
class JournalTake:
    """Readings in the order they were committed; ``until`` is where the consumer will stand."""

    until: int
    stations: list[str]
    times: npt.NDArray[np.int64]  # Unix seconds
    water_levels: npt.NDArray[np.float64]  # NaN where absent
    rainfalls: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.stations)


async def take_journal(
    conn: psycopg.AsyncConnection[tuple[object, ...]], consumer: str
) -> JournalTake:
    """Everything committed by transactions that have all finished, since ``consumer``'s cursor.

    Locks the consumer's cursor row until the caller's transaction ends, so two evaluators
    cannot take the same readings.
    """
    with translate_errors("reading the ingest journal"):
        await conn.execute(
            "INSERT INTO journal_cursors (consumer, xid) VALUES (%s, '0'::xid8)"
            " ON CONFLICT (consumer) DO NOTHING",
            (consumer,),
        )
        cur = await conn.execute(
            "SELECT xid::text FROM journal_cursors WHERE consumer = %s FOR UPDATE", (consumer,)
        )
        since = await _single(cur)
        # Every transaction with an id below this has committed or aborted.
        cur = await conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
        until = await _single(cur)
        cur = await conn.execute(_TAKE, {"since": since, "until": until})
        rows = await cur.fetchall()
    return JournalTake(
        until=int(until),
        stations=[str(row[0]) for row in rows],
        times=np.array([row[1] for row in rows], dtype=np.int64),
        water_levels=np.array([np.nan if row[2] is None else row[2] for row in rows], dtype=float),
        rainfalls=np.array([np.nan if row[3] is None else row[3] for row in rows], dtype=float),
    )


async def advance_journal(
    conn: psycopg.AsyncConnection[tuple[object, ...]], consumer: str, until: int
) -> None:
    """Moves the cursor and forgets what every consumer has taken."""
    with translate_errors("advancing the ingest journal"):
        await conn.execute(
            "UPDATE journal_cursors SET xid = %s::text::xid8 WHERE consumer = %s",
            (str(until), consumer),
        )
        await conn.execute(
            "DELETE FROM ingest_journal WHERE xid < (SELECT min(xid) FROM journal_cursors)"
        )


async def _single(cur: psycopg.AsyncCursor[tuple[object, ...]]) -> str:
    row = await cur.fetchone()
    assert row is not None
    return str(row[0])
