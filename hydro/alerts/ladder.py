"""叫应: which calls and messages an alert's ladder owes now. Pure: no I/O, no clock.

A ladder is a set of steps, each with a key unique within its alert; a step is taken once (the
store keeps them, one row per alert and key) and every decision is made from the steps already
taken, the confirmations and ``now``. So a restart, or a second process, computes the same steps
and takes none twice; a step that fell due while hydro was down is due at the next run, and the
one after it counts from when it was really taken, so nothing comes in a burst.

Keys: ``<ladder>:call:<role>:<n>`` (the n-th call to a station person), ``<ladder>:<level>:<n>``
(an escalation level; only the last one repeats), ``<ladder>:stop`` (somebody answered the
severity this ladder is for: an alert that escalates to another severity starts that one's
ladder, since a yes to the yellow is no answer to the red) and ``stop`` (an ack or a clear: the
alert's ladders are over for good).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from hydro.models import Channel, Confirmation, Recipient, Role, Station
from hydro.rules.model import LadderPolicy
from hydro.texts import ROLE_NAMES, SEVERITY_NAMES

STOP = "stop"

# Whom each escalation level reaches, and how people name it.
LEVEL_ROLES = {"county": Role.COUNTY, "prefecture": Role.PREFECTURE, "duty": Role.DUTY}


@dataclass(frozen=True, slots=True)
class TakenStep:
    key: str
    at: dt.datetime  # the ladder's clock when it was taken
    # A call it queued still waits for its turn (the call rate is a backlog in a wide flood):
    # nobody is called again before their last call has even rung.
    waiting: bool = False


@dataclass(frozen=True, slots=True)
class LadderStep:
    """A step due now: whom to reach by which channels, and why. No recipients: nobody can be
    reached (no phone, no contact); the step is recorded with its reason and the ladder moves
    on."""

    key: str
    reason: str
    recipients: tuple[Recipient, ...] = ()
    channels: tuple[Channel, ...] = ()


@dataclass(frozen=True, slots=True)
class LadderAlert:
    """An alert as its ladder sees it. ``confirmations``: the answers to its present
    severity (or a higher one it stood at)."""

    alert_id: int
    station: Station
    severity: str
    open: bool
    acknowledged_by: str | None
    taken: tuple[TakenStep, ...]
    confirmations: tuple[Confirmation, ...]


def due_steps(
    alert: LadderAlert,
    policy: LadderPolicy | None,
    reach: Mapping[str, tuple[Recipient, ...]],
    now: dt.datetime,
) -> list[LadderStep]:
    """The steps due at ``now``. ``reach``: whom each level of ``escalate_to`` reaches for this
    alert's station (its county's contacts, the duty officers)."""
    taken = {step.key: step.at for step in alert.taken}
    waiting = frozenset(step.key for step in alert.taken if step.waiting)
    if STOP in taken:
        return []
    stop = _stop_reason(alert)
    if stop is not None:
        return [LadderStep(STOP, stop)] if taken else []
    if policy is None:
        return []
    mine = {key: at for key, at in taken.items() if key.startswith(f"{policy.id}:")}
    answered = f"{policy.id}:{STOP}"
    if answered in mine:
        return []
    if alert.confirmations:
        return [LadderStep(answered, _answered_reason(alert.confirmations[0]))] if mine else []
    start = min(mine.values(), default=now)
    steps = _person_calls(alert, policy, mine, waiting, start, now)
    steps += _escalations(alert, policy, reach, mine, start, now)
    return steps


def _answered_reason(first: Confirmation) -> str:
    to = first.recipient
    how = {"keypress": "电话按键", "link": "短信链接", "operator": "值班员代为"}[first.answer]
    return f"{ROLE_NAMES[to.role]}{to.name}已确认({how}), 停止叫应"


def _stop_reason(alert: LadderAlert) -> str | None:
    """Why the alert's ladders are over for good, if they are."""
    if alert.acknowledged_by is not None:
        return f"预警已由{alert.acknowledged_by}签收, 停止叫应"
    if not alert.open:
        return "预警已解除, 停止叫应"
    return None


def _person_calls(  # noqa: PLR0917 - the alert, its policy, its steps, and the clock
    alert: LadderAlert,
    policy: LadderPolicy,
    taken: Mapping[str, dt.datetime],
    waiting: frozenset[str],
    start: dt.datetime,
    now: dt.datetime,
) -> list[LadderStep]:
    """Each called person's next call: the first at the start, each other ``call_again`` after
    the one before, up to ``attempts``, and never while the one before waits to be placed."""
    persons = {p.role: p for p in alert.station.persons}
    severity = SEVERITY_NAMES.get(alert.severity, alert.severity)
    steps = []
    for role in policy.call:
        person, name = persons.get(role), ROLE_NAMES[role]
        for n in range(1, policy.attempts + 1):
            key = _call_key(policy, role, n)
            if key in taken:
                if person is None:
                    break  # nobody to call again: the first step said so
                continue
            before = _call_key(policy, role, n - 1)
            if n > 1 and before in waiting:
                break
            due = start if n == 1 else taken[before] + policy.call_again
            if due <= now:
                if person is None:
                    steps.append(LadderStep(key, f"测站无{name}电话, 无法呼叫"))
                else:
                    reason = (
                        f"{severity}预警叫应, 呼叫{name}"
                        if n == 1
                        else f"{name}未确认, 第{n}次呼叫"
                    )
                    steps.append(LadderStep(key, reason, (person,), (Channel.VOICE,)))
            break
    return steps


def _call_key(policy: LadderPolicy, role: Role, n: int) -> str:
    return f"{policy.id}:call:{role.value}:{n}"


def _escalations(  # noqa: PLR0917 - the alert, its policy, whom it reaches, and the clock
    alert: LadderAlert,
    policy: LadderPolicy,
    reach: Mapping[str, tuple[Recipient, ...]],
    taken: Mapping[str, dt.datetime],
    start: dt.datetime,
    now: dt.datetime,
) -> list[LadderStep]:
    """The next level ``escalate_after`` after the start or the level before (at once after a
    level that reached nobody); the last level again every ``repeat_interval`` while nobody
    confirms."""
    since, waited = start, policy.escalate_after
    for index, level in enumerate(policy.escalate_to):
        recipients = reach.get(level, ())
        n = 1
        while (key := f"{policy.id}:{level}:{n}") in taken:
            since, n, waited = taken[key], n + 1, policy.repeat_interval
        repeats = index == len(policy.escalate_to) - 1 and bool(recipients)
        if n > 1 and not repeats:
            waited = policy.escalate_after if recipients else dt.timedelta(0)
            continue  # taken, and not repeated: on to the next level
        if since + waited > now:
            return []
        name = ROLE_NAMES[LEVEL_ROLES[level]]
        if n > 1:
            reason = f"{name}未确认, 第{n}次呼叫"
        elif waited:
            reason = f"{int(waited.total_seconds() // 60)}分钟无人确认, 升级至{name}"
        else:
            reason = f"上一级无人可联系, 升级至{name}"
        if not recipients:
            where = {"county": alert.station.county, "prefecture": alert.station.prefecture}
            reason += f": {where.get(level, '')}无{name}联系方式, 继续下一级"
            return [LadderStep(key, reason)]
        return [LadderStep(key, reason, recipients, (Channel.VOICE, Channel.SMS))]
    return []
