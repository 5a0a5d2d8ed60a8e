"""Providers behind one small interface: ``send`` hands a notification over by its channel (an
SMS as a message, a voice call as a call, never the one through the other's API) and returns
the provider's id for it (a message SID, a call SID), or raises :class:`SmsError`, which says
whether trying again may help (429, 5xx, network) or not (an invalid number, a refused sender)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, NoReturn, Protocol, TextIO

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from hydro.errors import HydroError
from hydro.models import Channel, Notification, mask_phone
from hydro.texts import ROLE_NAMES
from hydro.twiml import MANDARIN, Speech, call_script, gather_url

__all__ = [
    "CallAnswer",
    "CallWebhooks",
    "ConsoleProvider",
    "SmsError",
    "SmsProvider",
    "TwilioProvider",
]


class SmsError(HydroError):
    """A notification not handed over, SMS or call alike."""

    def __init__(self, message: str, *, retryable: bool, code: str | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code


class SmsProvider(Protocol):
    name: str

    async def send(self, notification: Notification) -> str:
        """Sends the message or places the call, by its channel; returns the provider's id."""
        ...


# What a simulated person does with a console call: (the call, its id, the key pressed or None
# when nobody answered). The wiring records it as the webhooks record a real call's.
CallAnswer = Callable[[Notification, str, str | None], Awaitable[None]]
ConsoleAnswers = Literal["first", "odd_alerts", "none"]


class ConsoleProvider:
    """Prints each SMS and call, for development and ``hydro demo``: who gets what, and why.

    Calls are answered by simulated people, deterministically by ``answers`` (config's
    voice.console_answers): "first" presses 1 on the first call this process places for each
    alert, "odd_alerts" only for alerts with an odd id, "none" never; every other call rings
    out (no-answer). ``answer`` records what they did.
    """

    name = "console"

    def __init__(
        self,
        out: TextIO = sys.stdout,
        *,
        answers: ConsoleAnswers = "first",
        answer: CallAnswer | None = None,
    ) -> None:
        self._out = out
        self._answers = answers
        self._answer = answer
        self._answered: set[int] = set()  # alerts whose call was answered

    async def send(self, notification: Notification) -> str:
        n, to = notification, notification.recipient
        kind = "CALL" if n.channel is Channel.VOICE else "SMS"
        self._print(
            f"{kind} #{n.outbox_id} to {ROLE_NAMES[to.role]} {to.name} {mask_phone(to.phone)}"
            f" (station {n.station}): {n.text}"
        )
        if n.channel is not Channel.VOICE:
            return f"console-{n.outbox_id}"
        sid = f"console-call-{n.outbox_id}"
        digits = self._pressed(n)
        self._print(
            f"CALL #{n.outbox_id} answered by {to.name}: pressed {digits}"
            if digits
            else f"CALL #{n.outbox_id} not answered"
        )
        if self._answer is not None:
            await self._answer(n, sid, digits)
        return sid

    def _pressed(self, call: Notification) -> str | None:
        alert = call.alert_id
        if alert is None or alert in self._answered or self._answers == "none":
            return None
        if self._answers == "odd_alerts" and alert % 2 == 0:
            return None
        self._answered.add(alert)
        return "1"

    def _print(self, line: str) -> None:
        print(line, file=self._out, flush=True)


@dataclass(frozen=True, slots=True)
class CallWebhooks:
    """Where Twilio posts a call's key press (``gather``) and its final status (``status``):
    absolute URLs under api.public_url."""

    gather: str
    status: str


class TwilioProvider:
    """The real ``twilio`` client; ``base_url`` points it at a Twilio-compatible endpoint.

    The client is synchronous (requests), so each send runs in a worker thread, which
    ``timeout`` (seconds, for the connection and for each wait for the answer) frees. The Account
    SID is part of every request's URL, which the client and urllib3 log and network errors
    quote: all of them reach hydro's log and the outbox with the SID and auth token masked.
    """

    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        sender: str,
        *,
        base_url: str | None = None,
        status_callback: str | None = None,
        calls: CallWebhooks | None = None,
        speech: Speech = MANDARIN,
        timeout: float = 10.0,
    ) -> None:
        self._secrets = (account_sid, auth_token)
        _masked_in_logs.secrets.update(self._secrets)
        self._client = Client(
            account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout)
        )
        if base_url:
            self._client.api.base_url = base_url.rstrip("/")
        self._sender = sender
        self._status_callback = status_callback
        self._calls = calls
        self._speech = speech

    async def send(self, notification: Notification) -> str:
        if notification.channel is Channel.VOICE:
            return await asyncio.to_thread(self._call, notification)
        return await asyncio.to_thread(self._send, notification)

    def _send(self, notification: Notification) -> str:
        with self._translated():
            message = self._client.messages.create(
                to=notification.recipient.phone,
                from_=self._sender,
                body=notification.text,
                **({"status_callback": self._status_callback} if self._status_callback else {}),
            )
        return str(message.sid)

    def _call(self, notification: Notification) -> str:
        """Places the call with its script inline; the key press comes back on the gather
        webhook, whose URL names the outbox row (Twilio signs it), the outcome on the status
        webhook by the call's SID."""
        if self._calls is None:
            raise SmsError(
                "a voice call needs api.public_url: Twilio must reach hydro's key-press webhook",
                retryable=False,
            )
        gather = gather_url(self._calls.gather, notification.outbox_id, 1)
        with self._translated():
            call = self._client.calls.create(
                to=notification.recipient.phone,
                from_=self._sender,
                twiml=call_script(notification.text, gather, self._speech),
                status_callback=self._calls.status,
                status_callback_event=["completed"],  # the final status only
                status_callback_method="POST",
            )
        return str(call.sid)

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except TwilioRestException as exc:
            retryable = exc.status == 429 or exc.status >= 500
            code = str(exc.code) if exc.code is not None else str(exc.status)
            self._raise(f"twilio answered {exc.status} (code {code}): {exc.msg}", retryable, code)
        except (TwilioException, OSError) as exc:
            self._raise(f"twilio unreachable: {exc}", True, None)

    def _raise(self, message: str, retryable: bool, code: str | None) -> NoReturn:
        # Raised without its cause: the cause quotes the URL, and with it the Account SID.
        raise SmsError(_mask(message, self._secrets), retryable=retryable, code=code) from None


def _mask(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, f"{secret[:2]}…{secret[-4:]}" if len(secret) > 8 else "…")
    return text


class _MaskSecrets(logging.Filter):
    """Masks the secrets of every Twilio provider in the log records of the libraries that
    carry its requests: the twilio client logs each URL at INFO, urllib3 at DEBUG."""

    LOGGERS = (
        "twilio.http_client",
        "urllib3.connectionpool",
        "urllib3.connection",
        "urllib3.poolmanager",
        "urllib3.response",
        "urllib3.util.retry",
    )

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        for name in self.LOGGERS:
            logging.getLogger(name).addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = _mask(text, self.secrets)
        if masked != text:
            record.msg, record.args = masked, None
        return True


_masked_in_logs = _MaskSecrets()
