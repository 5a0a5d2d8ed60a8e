"""叫应 ladders at work: loads the alerts that may owe a step, asks the pure ladder which steps
are due, and takes each once, queueing its calls and SMS in the same transaction.

Runs on the evaluator's clock (``now`` is never the database's), every ``alerting.interval`` and
as soon as the evaluator opens or escalates an alert. A call or an SMS is an outbox row: a
provider outage delays it (the dispatcher retries), never loses it, and the ladder's next step
still comes at its time.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass

import psycopg_pool

from hydro.alerts.ladder import LEVEL_ROLES, LadderAlert, LadderStep, TakenStep, due_steps
from hydro.models import Channel, Confirmation, Notification, Recipient, Station, mask_phone
from hydro.rules import RuleSet
from hydro.stations import Registry
from hydro.store.confirmations import confirmations_of
from hydro.store.db import Connection, connection
from hydro.store.ladder import LadderRow, attach_outbox, ladder_alerts, take_step
from hydro.store.links import Links, link_url
from hydro.store.outbox import enqueue
from hydro.texts import SEVERITY_NAMES, escalation_sms, without_link

log = logging.getLogger(__name__)

# Who is on duty at a time (the duty roster, else sms.duty_officers).
OnDuty = Callable[[dt.datetime], Sequence[Recipient]]


@dataclass(frozen=True, slots=True)
class TakenRecord:
    alert_id: int
    step: LadderStep
    outbox_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class LadderRunner:
    registry: Registry
    rules: RuleSet
    pool: psycopg_pool.AsyncConnectionPool
    duty: OnDuty
    links: Links | None = None
    _: KW_ONLY
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)

    async def run(self) -> list[TakenRecord]:
        """Takes every step due now; the steps this run took."""
        now = self.clock()
        duty = tuple(self.duty(now))
        taken: list[TakenRecord] = []
        async with connection(self.pool, "running 叫应 ladders") as conn:
            rows = await ladder_alerts(conn)
            answers = await confirmations_of(conn, [row.alert_id for row in rows])
            for row in rows:
                station = self.registry.get(row.station)
                if station is None:
                    log.warning(
                        "alert=%d station=%s: not in the registry, no ladder",
                        row.alert_id,
                        row.station,
                    )
                    continue
                alert = _ladder_alert(row, station, answers.get(row.alert_id, []))
                policy = self.rules.ladder_of(row.rule_id)
                links = self.links if policy is not None and policy.link else None
                for step in due_steps(alert, policy, self._reach(station, duty), now):
                    record = await self._take(conn, row, station, step, links, now)
                    if record is not None:
                        taken.append(record)
        return taken

    def _reach(
        self, station: Station, duty: tuple[Recipient, ...]
    ) -> dict[str, tuple[Recipient, ...]]:
        reach = {"duty": duty}
        for level in ("county", "prefecture"):
            reach[level] = self.registry.flood_contacts(station, LEVEL_ROLES[level])
        return reach

    async def _take(  # noqa: PLR0917 - one step of one alert, at the run's time
        self,
        conn: Connection,
        row: LadderRow,
        station: Station,
        step: LadderStep,
        links: Links | None,
        now: dt.datetime,
    ) -> TakenRecord | None:
        step_id = await take_step(conn, row.alert_id, step.key, step.reason, now)
        if step_id is None:
            return None  # taken by another process, or before a restart
        message = row.message or _fallback_message(station, row.severity)
        outbox_ids = []
        for recipient in step.recipients:
            for channel in step.channels:
                text = await _text(conn, row.alert_id, recipient, channel, message, links, now)
                notification = Notification(
                    recipient, text, channel, station=station.code, alert_id=row.alert_id
                )
                outbox_ids.append(await enqueue(conn, notification))
        if outbox_ids:
            await attach_outbox(conn, step_id, outbox_ids)
        log.info(
            "alert=%d station=%s ladder %s: %s -> %s outbox=%s",
            row.alert_id,
            station.code,
            step.key,
            step.reason,
            ",".join(mask_phone(r.phone) for r in step.recipients) or "nobody",
            ",".join(map(str, outbox_ids)) or "-",
        )
        return TakenRecord(row.alert_id, step, tuple(outbox_ids))


async def _text(  # noqa: PLR0917 - one message to one person
    conn: Connection,
    alert_id: int,
    recipient: Recipient,
    channel: Channel,
    message: str,
    links: Links | None,
    now: dt.datetime,
) -> str:
    """A call speaks the alert's message; an escalation's SMS says nobody answered, and ends
    with the person's link."""
    if channel is Channel.VOICE:
        return without_link(message)
    if links is None:
        return escalation_sms(message)
    return escalation_sms(message, await link_url(conn, links, alert_id, recipient, now))


def _ladder_alert(row: LadderRow, station: Station, answers: list[Confirmation]) -> LadderAlert:
    """The alert as its ladder sees it: only answers to its present rank stop it."""
    taken = tuple(
        TakenStep(k, at, waiting)
        for k, at, waiting in zip(row.keys, row.taken_at, row.waiting, strict=True)
    )
    answered = tuple(a for a in answers if a.answers(row.rank))
    return LadderAlert(
        row.alert_id, station, row.severity, row.open, row.acknowledged_by, taken, answered
    )


def _fallback_message(station: Station, severity: str) -> str:
    """For an alert whose persons got no SMS (a rule that names none): who, where, how bad."""
    name = SEVERITY_NAMES.get(severity, severity)
    return f"{station.prefecture}{station.county}{station.name}发布{name}预警,请立即核实"
