"""SMS providers behind one small interface: ``send`` returns the provider's message id or
raises :class:`SmsError`, which says whether trying again may help (429, 5xx, network) or not
(an invalid number, a refused sender)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterable
from typing import Protocol, TextIO

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from hydro.errors import HydroError
from hydro.models import Notification, mask_phone
from hydro.texts import ROLE_NAMES

__all__ = [
    "ConsoleProvider",
    "SmsError",
    "SmsProvider",
    "TwilioProvider",
]


class SmsError(HydroError):
    def __init__(self, message: str, *, retryable: bool, code: str | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code


class SmsProvider(Protocol):
    name: str

    async def send(self, notification: Notification) -> str:
        """Hands the message over; returns the provider's id for it."""
        ...


class ConsoleProvider:
    """Prints each SMS, for development and ``hydro demo``: who gets what, and why."""

    name = "console"

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self._out = out

    async def send(self, notification: Notification) -> str:
        n, to = notification, notification.recipient
        print(
            f"SMS #{n.outbox_id} to {ROLE_NAMES[to.role]} {to.name} {mask_phone(to.phone)}"
            f" (station {n.station}): {n.text}",
            file=self._out,
            flush=True,
        )
        return f"console-{n.outbox_id}"


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

    async def send(self, notification: Notification) -> str:
        return await asyncio.to_thread(self._send, notification)

    def _send(self, notification: Notification) -> str:
        try:
            message = self._client.messages.create(
                to=notification.recipient.phone,
                from_=self._sender,
                body=notification.text,
                **({"status_callback": self._status_callback} if self._status_callback else {}),
            )
        except TwilioRestException as exc:
            retryable = exc.status == 429 or exc.status >= 500
            code = str(exc.code) if exc.code is not None else str(exc.status)
            raise SmsError(
                _mask(f"twilio answered {exc.status} (code {code}): {exc.msg}", self._secrets),
                retryable=retryable,
                code=code,
            ) from None  # the cause quotes the URL, and with it the Account SID
        except (TwilioException, OSError) as exc:
            raise SmsError(
                _mask(f"twilio unreachable: {exc}", self._secrets), retryable=True
            ) from None
        return str(message.sid)


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
