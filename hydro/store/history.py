"""The reading history the rules look back over: the latest observation of each station, recent
water levels and rainfall by slot. Rows leave as named tuples in the order their queries give.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

from psycopg import sql
from psycopg.rows import class_row

from hydro.store.db import Connection, fetch_all


class LatestObservation(NamedTuple):
    station: str
    seconds: int  # Unix time of the station's newest observation
    water_level: float | None


class LevelPoint(NamedTuple):
    station: str
    seconds: int  # Unix time
    water_level: float


class RainSlot(NamedTuple):
    station: str
    slot: int
    mm: float


_LATEST = """
SELECT station, extract(epoch FROM time)::bigint AS seconds, water_level FROM station_latest
"""
_LEVELS = """
SELECT station, extract(epoch FROM time)::bigint AS seconds, water_level FROM readings
WHERE station = ANY(%s) AND time >= %s AND time <= %s AND water_level IS NOT NULL
ORDER BY station, time
"""


async def latest_observations(conn: Connection) -> list[LatestObservation]:
    """Every station that has reported: its newest observation and water level."""
    doing = "reading the latest observations"
    return await fetch_all(conn, doing, class_row(LatestObservation), _LATEST)


async def water_levels(
    conn: Connection, stations: Sequence[str], since: dt.datetime, until: dt.datetime
) -> list[LevelPoint]:
    """The stations' stored water levels in [since, until], by station and time: the history a
    rate-of-rise rule looks back over."""
    doing = "reading recent water levels"
    return await fetch_all(
        conn, doing, class_row(LevelPoint), _LEVELS, (list(stations), since, until)
    )


async def rainfall_by_slot(
    conn: Connection, slot_seconds: int, after: dt.datetime, stations: Sequence[str] | None = None
) -> list[RainSlot]:
    """The stored rainfall after ``after``, summed per slot: slot k ends at k * ``slot_seconds``
    Unix time and holds the readings of (its start, its end]. For all stations, or only
    ``stations``."""
    only = sql.SQL("" if stations is None else " AND station = ANY(%(stations)s)")
    return await fetch_all(
        conn,
        "reading recent rainfall",
        class_row(RainSlot),
        sql.SQL(
            "SELECT station, ceil(extract(epoch FROM time) / %(slot)s)::bigint AS slot,"
            " sum(rainfall) AS mm"
            " FROM readings WHERE time > %(after)s AND rainfall IS NOT NULL{} GROUP BY 1, 2"
        ).format(only),
        {"slot": slot_seconds, "after": after, "stations": list(stations or ())},
    )
