"""What the API's handlers need, built once by the wiring (``hydro.app``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import psycopg_pool

from hydro.config import ApiToken
from hydro.desk.manual import ManualSms
from hydro.duty import DutyRoster
from hydro.models import Reading
from hydro.stations.registry import Registry
from hydro.store.manual import ManualEntry
from hydro.twiml import MANDARIN, Speech


@dataclass(frozen=True)
class ApiContext:
    pool: psycopg_pool.AsyncConnectionPool
    registry: Registry
    tokens: tuple[ApiToken, ...]
    rule_names: Mapping[str, str]  # rule id -> its name (超警戒水位), for people
    silence_families: frozenset[str]  # alert families that mean "no data"
    twilio_auth_token: str | None  # None: the status webhook refuses everything
    public_url: str | None  # what Twilio signs; None: the URL as this server received it
    roster: DutyRoster  # who is on duty: told about undelivered SMS, shown on the page
    broker_reachable: Callable[[], Awaitable[str | None]]  # None when fine, else why not
    # The daily report of a day (None: the last that ended) in a format (json, html, csv,
    # text): (the text, whether it is the stored report, the day).
    daily_report: Callable[[dt.date | None, str], Awaitable[tuple[str, bool, dt.date]]]
    # Judges and stores a reading an operator typed in; ReadingRefused naming why.
    enter_reading: Callable[[ManualEntry], Awaitable[Reading]]
    max_body_bytes: int  # api.max_body_bytes: larger request bodies get 413 unread
    max_csv_rows: int  # api.max_csv_rows: alerts per CSV response
    max_series_points: int  # api.max_series_points: points per readings response
    manual_sms: ManualSms  # the duty desk's manual SMS: previews and sends
    speech: Speech = MANDARIN  # how calls speak: voice.language, voice.tts_voice
    link_tries_per_minute: int = 10  # api.link_tries_per_minute: per code and per client
