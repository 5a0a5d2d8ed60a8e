"""Alerts, their transitions and the SMS outbox, as the evaluator records them.

Everything here runs inside the caller's transaction: the evaluator records a tick's changes,
the messages they send and its journal cursor together, so a restart neither repeats nor loses
a notification.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from hydro.models import AlertChange, AlertChangeKind
from hydro.store.db import translate_errors

Connection = psycopg.AsyncConnection[tuple[object, ...]]


@dataclass(frozen=True, slots=True)
class OpenAlertState:
    station: str
    family: str
    rank: int
    below_count: int


async def open_alert_states(conn: Connection) -> list[OpenAlertState]:
    with translate_errors("loading open alerts"):
        cur = await conn.execute(
            "SELECT station, family, rank, below_count FROM alerts WHERE state = 'open'"
        )
        rows = await cur.fetchall()
    return [OpenAlertState(str(s), str(f), int(str(r)), int(str(b))) for s, f, r, b in rows]


_OPEN = """
INSERT INTO alerts (station, family, rule_id, rank, severity, state, opened_at, peak_value, late)
VALUES (%(station)s, %(family)s, %(rule_id)s, %(rank)s, %(severity)s, 'open',
        %(observed_at)s, %(value)s, %(late)s)
RETURNING id
"""
_ESCALATE = """
UPDATE alerts SET rule_id = %(rule_id)s, rank = %(rank)s, severity = %(severity)s,
    escalated_at = %(observed_at)s, peak_value = greatest(peak_value, %(value)s), below_count = 0
WHERE station = %(station)s AND family = %(family)s AND state = 'open'
RETURNING id
"""
_CLEAR = """
UPDATE alerts SET state = 'cleared', cleared_at = %(observed_at)s, below_count = 0
WHERE station = %(station)s AND family = %(family)s AND state = 'open'
RETURNING id
"""
_EVENT = """
INSERT INTO alert_events (alert_id, change, rule_id, rank, observed_at, value, late)
VALUES (%(alert_id)s, %(change)s, %(rule_id)s, %(rank)s, %(observed_at)s, %(value)s, %(late)s)
RETURNING id
"""
_SMS = """
INSERT INTO outbox (alert_id, event_id, station, role, person, phone, body)
VALUES (%s, %s, %s, %s, %s, %s, %s)
RETURNING id
"""


@dataclass(frozen=True, slots=True)
class RecordedChange:
    alert_id: int
    event_id: int
    outbox_ids: tuple[int, ...]


async def record_changes(conn: Connection, changes: Sequence[AlertChange]) -> list[RecordedChange]:
    """Applies the changes in order; each one's messages are queued in the outbox."""
    statements = {
        AlertChangeKind.OPEN: _OPEN,
        AlertChangeKind.ESCALATE: _ESCALATE,
        AlertChangeKind.CLEAR: _CLEAR,
    }
    recorded = []
    with translate_errors("recording alert changes"):
        for change in changes:
            params = {
                "station": change.station,
                "family": change.family,
                "rule_id": change.rule_id,
                "rank": change.rank,
                "severity": change.severity,
                "observed_at": change.observed_at,
                "value": change.value,
                "late": change.late,
                "change": change.change.value,
            }
            alert_id = await _returned_id(await conn.execute(statements[change.change], params))
            event_id = await _returned_id(
                await conn.execute(_EVENT, {**params, "alert_id": alert_id})
            )
            outbox_ids = []
            for sms in change.messages:
                cur = await conn.execute(
                    _SMS,
                    (
                        alert_id,
                        event_id,
                        change.station,
                        sms.role.value,
                        sms.person,
                        sms.phone,
                        sms.body,
                    ),
                )
                outbox_ids.append(await _returned_id(cur))
            recorded.append(RecordedChange(alert_id, event_id, tuple(outbox_ids)))
    return recorded


async def set_below_counts(conn: Connection, counts: Sequence[tuple[str, str, int]]) -> None:
    """(station, family, consecutive readings below clearing) for open alerts that changed."""
    if not counts:
        return
    with translate_errors("recording alert hysteresis"):
        await conn.execute(
            "UPDATE alerts a SET below_count = u.below FROM unnest(%b::text[], %b::text[],"
            " %b::int4[]) AS u(station, family, below)"
            " WHERE a.station = u.station AND a.family = u.family AND a.state = 'open'",
            (
                [c[0] for c in counts],
                [c[1] for c in counts],
                [c[2] for c in counts],
            ),
        )


async def _returned_id(cur: psycopg.AsyncCursor[tuple[object, ...]]) -> int:
    row = await cur.fetchone()
    if row is None:
        raise AssertionError("an alert change found no open alert to change")
    return int(str(row[0]))
