"""``/api/v1/duty``: the duty desk's hand-over, who is on duty now and who comes next."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter

from hydro.api.auth import Context, Viewer
from hydro.api.schemas import DutyOut, DutyPerson
from hydro.api.views import phone_for
from hydro.duty import Shift
from hydro.models import Recipient
from hydro.texts import ROLE_NAMES

router = APIRouter(prefix="/api/v1/duty", tags=["duty"])


@router.get("", response_model=DutyOut)
async def duty(ctx: Context, principal: Viewer) -> DutyOut:
    """Who is told what goes to the duty desk right now (officers first, then the leader on
    call), with the end of their shift; ``sms.duty_officers`` with ``fallback`` true when the
    roster names no officer now; and the next shift of each role."""
    now = dt.datetime.now(dt.UTC)
    shifts = {s.recipient: s for s in ctx.roster.shifts(now)}
    on_duty = ctx.roster.on_duty(now)
    full = principal.sees_phones

    def person(who: Recipient, shift: Shift | None) -> DutyPerson:
        return DutyPerson(
            role=who.role.value,
            role_name=ROLE_NAMES[who.role],
            name=who.name,
            phone=phone_for(who.phone, full=full),
            start=shift.start if shift else None,
            end=shift.end if shift else None,
        )

    return DutyOut(
        at=now,
        on_duty=[person(p, shifts.get(p)) for p in on_duty],
        next=[person(s.recipient, s) for s in ctx.roster.next_shift(now)],
        fallback=any(p not in shifts for p in on_duty),
    )
