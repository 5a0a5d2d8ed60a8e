"""Manual SMS (人工短信): a duty officer's own message to the people they pick, previewed, then
queued in the outbox beside the automatic ones with who wrote it and why.

The template is a free text, a rule's message filled for a station (what ``hydro rules test``
prints), or the last alert SMS of a station (the send is then attached to that alert and shows
in its history). A send to more than ``sms.confirm_above`` people needs the preview's
``confirm``: it names exactly those messages, so what was confirmed is what goes.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import psycopg_pool

from hydro.config import SmsConfig
from hydro.desk.compose import Limits, Preview, check_text, compose, notifications
from hydro.desk.recipients import Audience, AudienceChoices, AudienceKind, Directory, pick
from hydro.errors import ConfirmationNeeded, SmsRefused
from hydro.models import Recipient
from hydro.rules.loader import RuleSet
from hydro.rules.messages import rule_text
from hydro.rules.model import LevelRule
from hydro.store.alerts import open_alerts
from hydro.store.db import connection
from hydro.store.manual_sends import ManualSend, queue_manual_send
from hydro.store.outbox import last_alert_message

log = logging.getLogger(__name__)

# Who is on duty now (the duty roster's officers and leader, else sms.duty_officers).
OnDuty = Callable[[], Sequence[Recipient]]


@dataclass(frozen=True, slots=True)
class SmsRequest:
    """What an operator asks for: whom, and the text, or where to take it from. A text given
    with ``from_alert`` is sent instead of the alert's, still attached to the alert."""

    audience: Audience
    text: str | None = None
    from_rule: str | None = None  # a rule id, filled for ``rule_station``
    rule_station: str | None = None  # default: the station written to, if that is one
    from_alert: str | None = None  # a station code: its last alert SMS


class Choices(AudienceChoices, Protocol):
    """An operator's form (the CLI's flags, the API's body): whom, and the text or where to
    take it from."""

    text: str | None
    from_rule: str | None
    rule_station: str | None
    from_alert: str | None


def request_of(choices: Choices) -> SmsRequest:
    """Raises SmsRefused unless exactly one kind of recipients is chosen."""
    c = choices
    return SmsRequest(pick(c), c.text, c.from_rule, c.rule_station, c.from_alert)


@dataclass(frozen=True, slots=True)
class Draft:
    preview: Preview
    alert_id: int | None  # the alert it is sent from


@dataclass(frozen=True, slots=True)
class Sent:
    send_id: int
    preview: Preview
    alert_id: int | None


class ManualSms:
    """Previews and sends; one per process, built by the wiring (``hydro.app``)."""

    def __init__(  # noqa: PLR0917 - the parts it joins, built by the wiring
        self,
        settings: SmsConfig,
        directory: Directory,
        rules: RuleSet,
        pool: psycopg_pool.AsyncConnectionPool,
        on_duty: OnDuty,
        silence_families: frozenset[str],
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._settings = settings
        self.directory = directory
        self._rules = {rule.id: rule for rule in rules.rules}
        self._pool = pool
        self._on_duty = on_duty
        self._silence = silence_families
        self._clock = clock

    @property
    def confirm_above(self) -> int:
        return self._settings.confirm_above

    async def preview(self, request: SmsRequest) -> Draft:
        """Raises SmsRefused naming what is wrong with the request."""
        template, alert_id = await self._template(request)
        addressees = self.directory.addressees(
            request.audience,
            in_alert=await self._in_alert()
            if request.audience.kind is AudienceKind.IN_ALERT
            else None,
            on_duty=self._on_duty() if request.audience.kind is AudienceKind.DUTY else (),
        )
        limits = Limits(self._settings.signature, self._settings.max_length)
        return Draft(compose(template, addressees, request.audience, limits), alert_id)

    async def send(
        self, request: SmsRequest, *, written_by: str, reason: str, confirm: str | None
    ) -> Sent:
        """Queues every message of the request's preview in one transaction. Raises
        ConfirmationNeeded for more than sms.confirm_above recipients without the preview's
        ``confirm``, SmsRefused for anything else wrong; then nothing is queued."""
        if not reason.strip():
            raise SmsRefused("say why this message is sent (reason)")
        if not written_by.strip():
            raise SmsRefused("say who writes this message")
        check_text(reason, "the reason")
        check_text(written_by, "the author's name")
        draft = await self.preview(request)
        preview = draft.preview
        if preview.recipients > self.confirm_above and confirm != preview.confirm:
            raise ConfirmationNeeded(preview.recipients, preview.confirm)
        send = ManualSend(
            written_by.strip(),
            reason.strip(),
            str(preview.audience),
            preview.template,
            draft.alert_id,
        )
        async with connection(self._pool, "queueing a manual SMS") as conn:
            send_id = await queue_manual_send(conn, send, notifications(preview, draft.alert_id))
        log.info(
            "manual send=%d alert=%s by %s: %d SMS (%d segments) to %s, reason: %s",
            send_id,
            draft.alert_id,
            send.written_by,
            preview.recipients,
            preview.segments,
            preview.audience,
            send.reason,
        )
        return Sent(send_id, preview, draft.alert_id)

    async def _template(self, request: SmsRequest) -> tuple[str, int | None]:
        alert_id = None
        text = request.text
        if request.from_alert is not None:
            if self.directory.station(request.from_alert) is None:
                raise SmsRefused(f"unknown station {request.from_alert!r}: not in the registry")
            async with connection(self._pool, "reading a station's last alert SMS") as conn:
                last = await last_alert_message(conn, request.from_alert)
            if last is None:
                raise SmsRefused(f"station {request.from_alert} has sent no alert SMS yet")
            alert_id, alert_text = last
            text = text or alert_text
        if request.from_rule is not None:
            if text is not None:
                raise SmsRefused("give a text, a rule or an alert to start from, not several")
            audience = request.audience
            station = audience.value if audience.kind is AudienceKind.STATION else None
            text = self._rule_text(request.from_rule, request.rule_station or station)
        if text is None:
            raise SmsRefused("the text is empty")
        return text, alert_id

    def _rule_text(self, rule_id: str, code: str | None) -> str:
        rule = self._rules.get(rule_id)
        if rule is None:
            raise SmsRefused(f"unknown rule {rule_id!r} (rules: {', '.join(self._rules)})")
        if code is None:
            raise SmsRefused(f"name the station to fill rule {rule_id} for")
        station = self.directory.station(code)
        if station is None:
            raise SmsRefused(f"unknown station {code!r}: not in the registry")
        if station.kind not in rule.kinds or (
            isinstance(rule, LevelRule) and getattr(station, rule.level) is None
        ):
            raise SmsRefused(f"rule {rule_id} does not apply to station {code} ({station.name})")
        return rule_text(rule, station, observed_at=self._clock())

    async def _in_alert(self) -> dict[str, frozenset[str]]:
        severities: defaultdict[str, set[str]] = defaultdict(set)
        for alert in await open_alerts(self._pool):
            if alert.family not in self._silence:
                severities[alert.station].add(alert.severity)
        return {code: frozenset(s) for code, s in severities.items()}
