"""Personal confirmation links (叫应), the only module with SQL on ``confirmation_links``.

A code is 64 random bits (11 characters of ``secrets.token_urlsafe``): a guess succeeds once in
2^64 tries, and the API rate-limits tries. One code per alert and person, kept across the SMS of
that alert (a reminder or an escalation reuses it, and extends its life).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.rows import dict_row

from hydro.models import Recipient, Role
from hydro.store.db import Connection, translate_errors

CODE_BYTES = 8


@dataclass(frozen=True, slots=True)
class Links:
    """Where personal confirmation links point (``api.public_url``), and how long they work
    after the last SMS that carried them (``alerting.link_ttl``)."""

    public_url: str
    ttl: dt.timedelta


async def link_url(
    conn: Connection, links: Links, alert_id: int, recipient: Recipient, now: dt.datetime
) -> str:
    """The person's link for the alert, its code issued (or its life extended) now."""
    return (await link_urls(conn, links, alert_id, [recipient], now))[recipient.phone]


async def link_urls(
    conn: Connection,
    links: Links,
    alert_id: int,
    recipients: Sequence[Recipient],
    now: dt.datetime,
) -> dict[str, str]:
    """Each person's link for the alert by phone, the codes issued (or their life extended)
    now in one statement: an alert's SMS to its three persons cost one round trip, not three."""
    codes = await issue_links(conn, alert_id, recipients, now + links.ttl)
    return {phone: f"{links.public_url}/c/{code}" for phone, code in codes.items()}


@dataclass(frozen=True, slots=True)
class Link:
    code: str
    alert_id: int
    recipient: Recipient
    expires_at: dt.datetime


async def issue_links(
    conn: Connection, alert_id: int, recipients: Sequence[Recipient], expires_at: dt.datetime
) -> dict[str, str]:
    """Each person's code for the alert by phone, new or the one they already have (valid until
    at least ``expires_at``), in the caller's transaction. A phone named twice (one person in two
    roles) has one code."""
    people = {r.phone: r for r in recipients}
    with translate_errors(f"issuing confirmation links for alert {alert_id}"):
        cur = conn.cursor()
        await cur.execute(
            "INSERT INTO confirmation_links (code, alert_id, role, person, phone, expires_at)"
            " SELECT code, %s, role, person, phone, %s"
            " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[])"
            " AS u(code, role, person, phone)"
            " ON CONFLICT (alert_id, phone) DO UPDATE SET expires_at ="
            " greatest(confirmation_links.expires_at, EXCLUDED.expires_at)"
            " RETURNING phone, code",
            (
                alert_id,
                expires_at,
                [secrets.token_urlsafe(CODE_BYTES) for _ in people],
                [r.role.value for r in people.values()],
                [r.name for r in people.values()],
                list(people),
            ),
        )
        return {str(phone): str(code) for phone, code in await cur.fetchall()}


def _link(row: dict[str, Any]) -> Link:
    recipient = Recipient(Role(row["role"]), row["person"], row["phone"])
    return Link(row["code"], row["alert_id"], recipient, row["expires_at"])


async def find_link(conn: Connection, code: str) -> Link | None:
    """The link of ``code``, expired or not (the caller says which); None for no such code."""
    with translate_errors("reading a confirmation link"):
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT code, alert_id, role, person, phone, expires_at FROM confirmation_links"
            " WHERE code = %s",
            (code,),
        )
        row = await cur.fetchone()
    return None if row is None else _link(row)
