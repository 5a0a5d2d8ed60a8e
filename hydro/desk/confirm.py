"""叫应 on a person's behalf (电话已联系): the duty officer reached them by phone. One way for
the API and the CLI, so both pick the person and write the record alike."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import psycopg_pool

from hydro.models import Confirmation, Recipient, Role
from hydro.stations import Registry, pick_person, reachable
from hydro.store.confirmations import confirm_on_behalf


async def confirm_person(
    pool: psycopg_pool.AsyncConnectionPool,
    registry: Registry,
    duty: Sequence[Recipient],
    alert_id: int,
    *,
    role: Role | None,
    phone: str | None,
    by: str,
    note: str | None,
    now: dt.datetime,
) -> tuple[Confirmation, bool] | str | None:
    """The person is the one among those the alert reaches (its station's, the flood contacts,
    the duty officers ``duty``) with the role and phone given; recorded under ``by`` and the
    note. The standing confirmation and whether it is this one; why not; None: no such alert."""
    return await confirm_on_behalf(
        pool,
        alert_id,
        lambda station: pick_person(reachable(registry, station, duty), role, phone),
        by,
        now,
        note=note,
    )
