"""The exact text each recipient of a manual SMS gets, and what it costs. Pure.

A template may name the recipient and their stations: ``{name}``, ``{station}`` (the station's
name; several joined with 、 for a person responsible for several), ``{code}``, ``{county}``,
``{prefecture}``, ``{river}``. Other braces are left as written. The signature
(``sms.signature``) goes in front.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from hydro.desk.recipients import Addressee, Audience
from hydro.errors import SmsRefused
from hydro.models import Notification, Recipient
from hydro.texts import SmsLength, sms_length

PLACEHOLDERS = ("name", "station", "code", "county", "prefecture", "river")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


@dataclass(frozen=True, slots=True)
class Message:
    """One recipient's message, as their phone shows it."""

    recipient: Recipient
    stations: tuple[str, ...]  # the codes of the stations it is about, if any
    text: str
    length: SmsLength

    @property
    def characters(self) -> int:
        return len(self.text)


@dataclass(frozen=True, slots=True)
class Preview:
    """Everything a send would queue; ``confirm`` identifies it, so a confirmation given for
    this preview does not send something else (the alerts, and so the recipients, changed)."""

    audience: Audience
    template: str
    messages: tuple[Message, ...]
    confirm: str

    @property
    def recipients(self) -> int:
        return len(self.messages)

    @property
    def segments(self) -> int:
        """What the whole send costs, in SMS."""
        return sum(m.length.segments for m in self.messages)


@dataclass(frozen=True, slots=True)
class Limits:
    signature: str  # sms.signature
    max_length: int  # sms.max_length: characters one person may receive, signature included


def compose(
    template: str, addressees: Sequence[Addressee], audience: Audience, limits: Limits
) -> Preview:
    """Raises SmsRefused for an empty template, nobody to send to, or a text over the limit."""
    body = template.strip()
    if not body:
        raise SmsRefused("the text is empty")
    check_text(body, "the text")
    if not addressees:
        raise SmsRefused(f"nobody to send to: {audience} has no recipients")
    filled = _PLACEHOLDER.search(body) is not None
    lengths: dict[str, SmsLength] = {}
    messages = []
    for addressee in addressees:
        text = limits.signature + (fill(body, addressee) if filled else body)
        length = lengths.get(text)
        if length is None:
            length = lengths[text] = sms_length(text)
        codes = tuple(s.code for s in addressee.stations)
        messages.append(Message(addressee.recipient, codes, text, length))
    longest = max(messages, key=lambda m: m.characters)
    if longest.characters > limits.max_length:
        raise SmsRefused(
            f"the text is too long: {longest.characters} characters for"
            f" {longest.recipient.name}, over sms.max_length {limits.max_length}"
            " (signature included)"
        )
    return Preview(audience, body, tuple(messages), _digest(audience, messages))


def check_text(text: str, what: str) -> None:
    """Raises SmsRefused for what no phone can show and PostgreSQL cannot store: a NUL, or half
    of a UTF-16 surrogate pair (JSON can carry both)."""
    if "\x00" in text:
        raise SmsRefused(f"{what} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SmsRefused(f"{what} contains an unpaired surrogate at {exc.start}") from exc


def fill(template: str, addressee: Addressee) -> str:
    """Only the placeholders the template names are worked out: a prefecture's 2,300 texts."""
    return _PLACEHOLDER.sub(lambda match: _value(match.group(1), addressee), template)


def _value(name: str, addressee: Addressee) -> str:
    if name == "name":
        return addressee.recipient.name
    field = "name" if name == "station" else name
    # dict.fromkeys: each county (prefecture, river) once, in the order of the stations.
    return "、".join(dict.fromkeys(v for s in addressee.stations if (v := getattr(s, field))))


def _digest(audience: Audience, messages: Sequence[Message]) -> str:
    digest = hashlib.sha256(str(audience).encode())
    for message in messages:
        digest.update(f"\x00{message.recipient.phone}\x00{message.text}".encode())
    return f"{len(messages)}-{digest.hexdigest()[:12]}"


def notifications(preview: Preview, alert_id: int | None) -> list[Notification]:
    """What the outbox queues: about the first of each person's stations, if any."""
    return [
        Notification(
            m.recipient,
            m.text,
            station=m.stations[0] if m.stations else None,
            alert_id=alert_id,
        )
        for m in preview.messages
    ]
