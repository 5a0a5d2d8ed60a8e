"""Alerts and their transitions, as the evaluator records them, with the SMS they queue.

Everything here runs inside the caller's transaction: the evaluator records a tick's changes,
the messages they send and its journal cursor together, so a restart neither repeats nor loses
a notification.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg_pool
from psycopg import sql
from psycopg.rows import class_row, scalar_row

from hydro.models import AlertChange, AlertChangeKind, Channel, Notification
from hydro.store.db import Connection, connection, fetch_all, translate_errors
from hydro.store.ladder import UNCONFIRMED
from hydro.store.links import Links, link_urls
from hydro.store.outbox import OutboxRecord, alert_messages, enqueue_all
from hydro.texts import with_link


@dataclass(frozen=True, slots=True)
class OpenAlertState:
    station: str
    family: str
    rank: int
    below_count: int
    below_held: int  # the highest rank the readings counted in below_count held


async def open_alert_states(conn: Connection) -> list[OpenAlertState]:
    return await fetch_all(
        conn,
        "loading open alerts",
        class_row(OpenAlertState),
        "SELECT station, family, rank, below_count, below_held FROM alerts WHERE state = 'open'",
    )


async def count_open_alerts(conn: Connection) -> int:
    """The one definition of "open alerts" every operator view shows: every alert not yet
    cleared, whatever its rule, a station's silence included (people were paged for it)."""
    with translate_errors("counting open alerts"):
        cur = conn.cursor(row_factory=scalar_row)
        await cur.execute("SELECT count(*) FROM alerts WHERE state = 'open'")
        count: int | None = await cur.fetchone()
    return count or 0


_OPEN = """
INSERT INTO alerts (station, family, rule_id, rank, severity, state, opened_at, peak_value, late,
                    last_notified_at)
VALUES (%(station)s, %(family)s, %(rule_id)s, %(rank)s, %(severity)s, 'open',
        %(observed_at)s, %(value)s, %(late)s, %(now)s)
RETURNING id
"""
_ESCALATE = """
UPDATE alerts SET rule_id = %(rule_id)s, rank = %(rank)s, severity = %(severity)s,
    escalated_at = %(observed_at)s, peak_value = greatest(peak_value, %(value)s), below_count = 0,
    below_held = 0, last_notified_at = %(now)s
WHERE station = %(station)s AND family = %(family)s AND state = 'open'
RETURNING id
"""
_CLEAR = """
UPDATE alerts SET state = 'cleared', cleared_at = %(observed_at)s, below_count = 0, below_held = 0
WHERE station = %(station)s AND family = %(family)s AND state = 'open'
RETURNING id
"""
_STEP_DOWN = """
UPDATE alerts SET rule_id = %(rule_id)s, rank = %(rank)s, severity = %(severity)s,
    below_count = 0, below_held = 0, last_notified_at = %(now)s
WHERE station = %(station)s AND family = %(family)s AND state = 'open'
RETURNING id
"""
_REMIND = """
UPDATE alerts SET last_notified_at = %(now)s
WHERE station = %(station)s AND family = %(family)s AND state = 'open'
RETURNING id
"""
# A change and its event in one statement (one round trip): the alert's id and the event's.
_RECORD = {
    kind: f"""
WITH changed AS ({statement})
INSERT INTO alert_events (alert_id, change, rule_id, rank, observed_at, value, late)
SELECT id, %(change)s, %(rule_id)s, %(rank)s, %(observed_at)s, %(value)s, %(late)s FROM changed
RETURNING alert_id, id
"""
    for kind, statement in {
        AlertChangeKind.OPEN: _OPEN,
        AlertChangeKind.ESCALATE: _ESCALATE,
        AlertChangeKind.CLEAR: _CLEAR,
        AlertChangeKind.REMIND: _REMIND,
        AlertChangeKind.STEP_DOWN: _STEP_DOWN,
    }.items()
}


@dataclass(frozen=True, slots=True)
class RecordedChange:
    alert_id: int
    event_id: int
    outbox_ids: tuple[int, ...]


# The changes whose SMS ask for a confirmation (叫应): not a clear, not a step down.
_LINKED_CHANGES = (AlertChangeKind.OPEN, AlertChangeKind.ESCALATE, AlertChangeKind.REMIND)


async def record_changes(
    conn: Connection,
    changes: Sequence[AlertChange],
    *,
    now: dt.datetime,
    links: Links | None = None,
    linked_rules: frozenset[str] = frozenset(),
) -> list[RecordedChange]:
    """Applies the changes in order, at the evaluation time ``now`` (what reminders count
    from); each one's messages are queued in the outbox, an SMS of a rule of ``linked_rules``
    ending with its person's confirmation link when ``links`` is given."""
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
                "now": now,
            }
            row = await (await conn.execute(_RECORD[change.change], params)).fetchone()
            if row is None:
                raise AssertionError("an alert change found no open alert to change")
            alert_id, event_id = int(str(row[0])), int(str(row[1]))
            texts = [message.text for message in change.messages]
            linked = change.rule_id in linked_rules and change.change in _LINKED_CHANGES
            if links is not None and linked:
                texts = await _with_links(conn, links, alert_id, change.messages, now)
            queued = [
                dataclasses.replace(message, text=text, station=change.station, alert_id=alert_id)
                for message, text in zip(change.messages, texts, strict=True)
            ]
            outbox_ids = await enqueue_all(conn, queued, event_id=event_id)
            recorded.append(RecordedChange(alert_id, event_id, tuple(outbox_ids)))
    return recorded


async def _with_links(
    conn: Connection,
    links: Links,
    alert_id: int,
    messages: Sequence[Notification],
    now: dt.datetime,
) -> list[str]:
    """The messages' texts, each SMS ending with its person's confirmation link."""
    sms = [m.recipient for m in messages if m.channel is Channel.SMS]
    urls = await link_urls(conn, links, alert_id, sms, now) if sms else {}
    return [
        with_link(m.text, urls[m.recipient.phone]) if m.channel is Channel.SMS else m.text
        for m in messages
    ]


async def set_below_counts(conn: Connection, counts: Sequence[tuple[str, str, int, int]]) -> None:
    """(station, family, consecutive readings below the alert's rank, the highest rank they
    held) for open alerts that changed."""
    if not counts:
        return
    with translate_errors("recording alert hysteresis"):
        await conn.execute(
            "UPDATE alerts a SET below_count = u.below, below_held = u.held"
            " FROM unnest(%b::text[], %b::text[], %b::int4[], %b::int4[])"
            " AS u(station, family, below, held)"
            " WHERE a.station = u.station AND a.family = u.family AND a.state = 'open'",
            (
                [c[0] for c in counts],
                [c[1] for c in counts],
                [c[2] for c in counts],
                [c[3] for c in counts],
            ),
        )


@dataclass(frozen=True, slots=True)
class AlertRecord:
    id: int
    station: str
    family: str
    rule_id: str
    rank: int
    severity: str
    state: str
    opened_at: dt.datetime
    escalated_at: dt.datetime | None
    cleared_at: dt.datetime | None
    peak_value: float | None
    late: bool
    acknowledged_by: str | None
    acknowledged_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class AlertEventRecord:
    id: int
    change: str
    rule_id: str
    rank: int
    observed_at: dt.datetime
    value: float | None
    late: bool


@dataclass(frozen=True, slots=True)
class AlertFilter:
    station: str | None = None
    stations: tuple[str, ...] | None = None  # any of these (a prefecture's); None: no limit
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    severity: str | None = None
    state: str | None = None  # open or cleared
    before: tuple[dt.datetime, int] | None = None  # (opened_at, id) of the last row of a page
    unconfirmed: bool = False  # only 未叫应 alerts (hydro.store.ladder.UNCONFIRMED)
    limit: int = 100


_ALERT_COLUMNS = sql.SQL(
    "id, station, family, rule_id, rank, severity, state, opened_at, escalated_at, cleared_at,"
    " peak_value, late, acknowledged_by, acknowledged_at"
)


async def list_alerts(
    pool: psycopg_pool.AsyncConnectionPool, query: AlertFilter
) -> list[AlertRecord]:
    """Newest first (by observation time, then id): pages continue from ``before``."""
    conditions: list[sql.Composable] = []
    params: list[object] = []
    for clause, value in (
        ("station = %s", query.station),
        ("station = ANY(%s)", None if query.stations is None else list(query.stations)),
        ("opened_at >= %s", query.since),
        ("opened_at < %s", query.until),
        ("severity = %s", query.severity),
        ("state = %s", query.state),
        ("(opened_at, id) < (%s, %s)", query.before),
    ):
        if value is not None:
            conditions.append(sql.SQL(clause))
            params.extend(value if isinstance(value, tuple) else [value])
    if query.unconfirmed:
        conditions.append(sql.SQL(UNCONFIRMED))
    where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
    statement = sql.SQL("SELECT {} FROM alerts{} ORDER BY opened_at DESC, id DESC LIMIT %s").format(
        _ALERT_COLUMNS, where
    )
    async with connection(pool, "listing alerts") as conn:
        cur = conn.cursor(row_factory=class_row(AlertRecord))
        await cur.execute(statement, [*params, query.limit])
        return await cur.fetchall()


async def open_alerts(pool: psycopg_pool.AsyncConnectionPool) -> list[AlertRecord]:
    """Every open alert: what the map colours stations by."""
    async with connection(pool, "listing open alerts") as conn:
        cur = conn.cursor(row_factory=class_row(AlertRecord))
        await cur.execute(
            sql.SQL("SELECT {} FROM alerts WHERE state = 'open' ORDER BY id").format(_ALERT_COLUMNS)
        )
        return await cur.fetchall()


async def find_alert(conn: Connection, alert_id: int) -> AlertRecord | None:
    with translate_errors(f"reading alert {alert_id}"):
        cur = conn.cursor(row_factory=class_row(AlertRecord))
        await cur.execute(
            sql.SQL("SELECT {} FROM alerts WHERE id = %s").format(_ALERT_COLUMNS), [alert_id]
        )
        return await cur.fetchone()


async def alert_detail(
    pool: psycopg_pool.AsyncConnectionPool, alert_id: int
) -> tuple[AlertRecord, list[AlertEventRecord], list[OutboxRecord]] | None:
    """The alert, its transitions and every SMS it caused, or None."""
    async with connection(pool, f"reading alert {alert_id}") as conn:
        alert = await find_alert(conn, alert_id)
        if alert is None:
            return None
        events_cur = conn.cursor(row_factory=class_row(AlertEventRecord))
        await events_cur.execute(
            "SELECT id, change, rule_id, rank, observed_at, value, late FROM alert_events"
            " WHERE alert_id = %s ORDER BY id",
            [alert_id],
        )
        events = await events_cur.fetchall()
        return alert, events, await alert_messages(conn, alert_id)


async def acknowledge(
    pool: psycopg_pool.AsyncConnectionPool, alert_id: int, by: str
) -> AlertRecord | None:
    """Marks an alert acknowledged (once: the first operator's name and time are kept)."""
    async with connection(pool, f"acknowledging alert {alert_id}") as conn:
        cur = conn.cursor(row_factory=class_row(AlertRecord))
        await cur.execute(
            sql.SQL(
                "UPDATE alerts SET acknowledged_by = coalesce(acknowledged_by, %s),"
                " acknowledged_at = coalesce(acknowledged_at, now()) WHERE id = %s RETURNING {}"
            ).format(_ALERT_COLUMNS),
            [by, alert_id],
        )
        return await cur.fetchone()


@dataclass(frozen=True, slots=True)
class DueReminder:
    station: str
    family: str
    rule_id: str
    rank: int


async def due_reminders(
    conn: Connection, families: Sequence[str], every: dt.timedelta, *, now: dt.datetime
) -> list[DueReminder]:
    """Open alerts of ``families`` whose last notification is older than ``every`` at the
    evaluation time ``now``."""
    return await fetch_all(
        conn,
        "finding due reminders",
        class_row(DueReminder),
        "SELECT station, family, rule_id, rank FROM alerts WHERE state = 'open'"
        " AND family = ANY(%s) AND last_notified_at < %s ORDER BY id",
        (list(families), now - every),
    )
