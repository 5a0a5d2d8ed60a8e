"""One error tree for hydro.

Every adapter translates its library's exceptions into one of these (``raise ... from exc``), so
callers decide what to do from two facts: the class, and whether trying again may help::

    HydroError                      retryable: False unless stated
    ├── ConfigError                 a config.yaml key or HYDRO_* variable is wrong (start-up stops)
    ├── RegistryError               the station registry cannot be used
    ├── RosterError                 the duty roster cannot be used
    ├── RulesError                  an alert rule file is invalid
    ├── StorageError                the database refused or failed
    │   └── StorageUnavailable      retryable: connection lost, server restarting, pool exhausted
    ├── ReadingRefused              a reading an operator typed in was refused (nothing stored)
    ├── BrokerUnavailable           retryable: the MQTT broker cannot be reached
    ├── SmsRefused                  a manual SMS cannot go as asked; nothing was queued
    │   └── ConfirmationNeeded      it goes to more people than sms.confirm_above: confirm it
    └── LocalServiceError           a local PostgreSQL or Mosquitto could not be started
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class HydroError(Exception):
    """Base of every error hydro raises on purpose."""

    retryable: bool = False


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in an operator's file, located as precisely as we can."""

    source: str
    message: str
    line: int | None = None
    # A gap hydro runs with (a county without a flood-control contact): shown by hydro check,
    # never a reason to refuse to start.
    warning: bool = False

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{where}: {'warning: ' if self.warning else ''}{self.message}"


class ProblemsError(HydroError):
    """Carries every problem found, so an operator fixes them all in one pass."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ConfigError(ProblemsError):
    """The configuration is invalid; hydro refuses to start."""


class RegistryError(ProblemsError):
    """The station registry has rows hydro cannot trust."""


class RosterError(ProblemsError):
    """The duty roster has rows hydro cannot trust: who is on duty would be a guess."""


class RulesError(ProblemsError):
    """An alert rule file has problems; hydro will not evaluate a rule set it cannot trust."""


class StorageError(HydroError):
    """The database refused an operation for a reason retrying will not fix."""


class StorageUnavailable(StorageError):
    """The database cannot be reached right now; the caller keeps its data and tries again."""

    retryable = True


class ReadingRefused(HydroError):
    """A reading an operator typed in is refused for ``reason``, as ingest would refuse a
    gateway's (``code``: the quarantine's RejectionCode value, or ``no_note``)."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class BrokerUnavailable(HydroError):
    """The MQTT broker cannot be reached right now."""

    retryable = True


class SmsRefused(HydroError):
    """A manual SMS cannot be sent as asked (empty or too long, unknown station, nobody to send
    to); the message says what to change. Nothing was queued."""


class ConfirmationNeeded(SmsRefused):
    """A send to more people than ``sms.confirm_above`` must echo its preview's confirmation."""

    def __init__(self, recipients: int, confirm: str) -> None:
        self.recipients = recipients
        self.confirm = confirm
        super().__init__(
            f"this message goes to {recipients} people: confirm it by sending again with"
            f" confirm={confirm} (the preview's confirmation)"
        )


class LocalServiceError(HydroError):
    """A local PostgreSQL or Mosquitto (tests, demo) could not be started or stopped."""
