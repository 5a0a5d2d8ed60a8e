"""The duty roster (值班表): who is on duty at a moment, from a CSV file operators keep.

Every message meant for the duty desk (a notice that an alert SMS did not arrive, the daily
digest) goes to whoever :meth:`DutyRoster.on_duty` names at the moment it is queued. The file has
one shift per row, ``start,end,role,name,phone`` (Chinese headers 开始,结束,岗位,姓名,电话):

- ``start``/``end``: local date-times (``2026-12-01 08:00``, in ``registry.default_timezone``), or
  for a roster that repeats every week a weekday and a time (``Mon 08:00`` or ``周一 08:00``; a
  shift may run over Sunday night into Monday). A file is dated or weekly, not both.
- ``role``: ``officer``/值班员 or ``leader``/带班领导; ``phone`` any valid number, stored as E.164.

Errors (``hydro check`` lists them; ``hydro run`` does not start): a row that cannot be read, an
end not after its start, two shifts of one role that overlap (two people sharing one shift, the
same start and end, is fine), a gap between the shifts of a role, no officer at all. Warning: a
day of the coming week a dated roster does not cover; then, as whenever no officer is on the
roster, ``sms.duty_officers`` are told instead, and the log says so.

Rosters change while hydro runs (a swapped shift, next month's roster): a loaded roster file is
looked at again at most every ``RECHECK_SECONDS`` when someone asks who is on duty, and an edited
file replaces it in every running process, unless the edit has errors: then it is refused (the
log says why) and the roster before it stays.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from hydro.config import DutyOfficer
from hydro.errors import Problem, RosterError
from hydro.loading import column_aliases, normalise_phone
from hydro.models import Recipient, Role

log = logging.getLogger(__name__)

COLUMNS: Mapping[str, tuple[str, ...]] = {
    "start": ("开始",),
    "end": ("结束",),
    "role": ("岗位",),
    "name": ("姓名",),
    "phone": ("电话",),
}
_ROLES = {
    "officer": Role.DUTY,
    "值班员": Role.DUTY,
    "leader": Role.LEADER,
    "带班领导": Role.LEADER,
}
_WEEKDAYS = {
    **{day: n for n, day in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))},
    **{day: n for n, day in enumerate(("周一", "周二", "周三", "周四", "周五", "周六", "周日"))},
    "周天": 6,
}
_WEEK = dt.timedelta(weeks=1)
# A weekly roster's times are naive times in the week of this Monday.
_WEEK_OF = dt.datetime(2001, 1, 1)
LOOKAHEAD_DAYS = 7  # hydro check warns about the days of this coming week without a roster
RECHECK_SECONDS = 10.0  # how often, at most, a running hydro looks whether the roster was edited


def utc_now() -> dt.datetime:
    """The wall clock, the default of every clock that decides who is on duty."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class Shift:
    """One person on duty from ``start`` until ``end`` (aware times), from a roster line."""

    role: Role  # Role.DUTY (值班员) or Role.LEADER (带班领导)
    name: str
    phone: str  # E.164
    start: dt.datetime
    end: dt.datetime
    line: int  # of the roster file; 0 for sms.duty_officers

    @property
    def recipient(self) -> Recipient:
        return Recipient(self.role, self.name, self.phone)

    def covers(self, at: dt.datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True, slots=True)
class _Row:
    """A roster line; a weekly one's times are naive, in the week of ``_WEEK_OF``."""

    role: Role
    name: str
    phone: str
    start: dt.datetime
    end: dt.datetime
    line: int

    @property
    def weekly(self) -> bool:
        return self.start.tzinfo is None


class DutyRoster:
    """Who is on duty when. Pure (no I/O once loaded); times in and out are aware datetimes.

    The interface the rest of hydro uses:

    - ``on_duty(at) -> tuple[Recipient, ...]``: everyone to tell at ``at``, officers (Role.DUTY)
      first, then the leader (Role.LEADER); ``sms.duty_officers`` (as Role.DUTY) when no officer
      of the roster covers ``at``, with a warning in the log when such a gap begins (callers
      ask on every page and every duty notice; one warning per gap is what someone reads).
    - ``shifts(at) -> tuple[Shift, ...]``: the roster's shifts covering ``at`` (no fallback).
    - ``next_shift(at) -> tuple[Shift, ...]``: for each role, the shift(s) starting next after
      ``at``: the hand-over the web page shows.
    """

    def __init__(
        self,
        rows: Iterable[_Row] = (),
        *,
        zone: str = "Asia/Shanghai",
        fallback: Sequence[DutyOfficer] = (),
        source: str = "sms.duty_officers",
    ) -> None:
        self._rows = tuple(rows)
        self._zone = ZoneInfo(zone)
        self._weekly = any(r.weekly for r in self._rows)
        self._fallback = tuple(Recipient(Role.DUTY, o.name, o.phone) for o in fallback)
        self.source = source  # the roster file, for messages
        self._in_gap = False  # the last lookup found no officer: its gap was warned about

    def on_duty(self, at: dt.datetime) -> tuple[Recipient, ...]:
        current = self.shifts(at)
        people = [s.recipient for s in sorted(current, key=lambda s: s.role is not Role.DUTY)]
        gap = not any(s.role is Role.DUTY for s in current)
        if gap:
            if self._rows and not self._in_gap:
                log.warning(
                    "no officer on the duty roster %s at %s: telling sms.duty_officers (%d)",
                    self.source,
                    at.astimezone(self._zone).isoformat(timespec="minutes"),
                    len(self._fallback),
                )
            people += self._fallback
        self._in_gap = gap
        return tuple(dict.fromkeys(people))

    def shifts(self, at: dt.datetime) -> tuple[Shift, ...]:
        return tuple(s for s in self._occurrences(at) if s.covers(at))

    def next_shift(self, at: dt.datetime) -> tuple[Shift, ...]:
        upcoming = [s for s in self._occurrences(at) if s.start > at]
        nexts: list[Shift] = []
        for role in (Role.DUTY, Role.LEADER):
            starts = [s.start for s in upcoming if s.role is role]
            nexts += [
                s for s in upcoming if s.role is role and s.start == min(starts, default=None)
            ]
        return tuple(nexts)

    def _occurrences(self, around: dt.datetime) -> list[Shift]:
        """The dated shifts, or a weekly roster's shifts of the weeks before, of and after
        ``around``'s week, ordered by start."""
        if not self._weekly:
            shifts = [_shift(r, r.start, r.end) for r in self._rows]
        else:
            local = around.astimezone(self._zone)
            monday = dt.datetime.combine(
                local.date() - dt.timedelta(days=local.weekday()), dt.time(), self._zone
            )
            shifts = []
            for week in (-1, 0, 1):
                for r in self._rows:
                    start = _wall(monday, week * _WEEK + (r.start - _WEEK_OF))
                    end = _wall(monday, week * _WEEK + (r.end - _WEEK_OF))
                    shifts.append(_shift(r, start, end))
        return sorted(shifts, key=lambda s: (s.start, s.line))


def _shift(row: _Row, start: dt.datetime, end: dt.datetime) -> Shift:
    return Shift(row.role, row.name, row.phone, start, end, row.line)


def _wall(monday: dt.datetime, offset: dt.timedelta) -> dt.datetime:
    """Local wall-clock time ``offset`` after ``monday`` (across a DST change too)."""
    naive = monday.replace(tzinfo=None) + offset
    return naive.replace(tzinfo=monday.tzinfo)


class WatchedRoster(DutyRoster):
    """A roster file's roster that takes the file's edits (see the module's docstring). The
    lookups read the file at most every ``recheck`` seconds of ``clock``; only an edit is
    checked and loaded again."""

    def __init__(
        self,
        path: Path,
        zone: str,
        fallback: Sequence[DutyOfficer],
        *,
        today: dt.date,
        recheck: float = RECHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(zone=zone, fallback=fallback, source=str(path))
        self._path, self._officers = path, tuple(fallback)
        self._recheck, self._clock = recheck, clock
        self._version = _file_version(path)
        self._checked_at = clock()
        self._take(path, today, refuse=_raise_roster_error)

    def on_duty(self, at: dt.datetime) -> tuple[Recipient, ...]:
        self._reload_if_edited()
        return super().on_duty(at)

    def shifts(self, at: dt.datetime) -> tuple[Shift, ...]:
        self._reload_if_edited()
        return super().shifts(at)

    def next_shift(self, at: dt.datetime) -> tuple[Shift, ...]:
        self._reload_if_edited()
        return super().next_shift(at)

    def _reload_if_edited(self) -> None:
        now = self._clock()
        if now - self._checked_at < self._recheck:
            return
        self._checked_at = now
        version = _file_version(self._path)
        if version == self._version:
            return
        self._version = version
        if self._take(self._path, dt.datetime.now(self._zone).date(), refuse=_log_refusal):
            log.info("duty roster %s edited: reloaded, %d shifts", self.source, len(self._rows))

    def _take(
        self, path: Path, today: dt.date, *, refuse: Callable[[str, list[Problem]], None]
    ) -> bool:
        """The file's roster in place of this one's, its warnings logged; ``refuse`` is told
        the errors of a file with any, and this roster stays."""
        fresh, problems, warnings = check_roster(path, self._zone.key, self._officers, today=today)
        if problems:
            refuse(str(path), problems)
            return False
        for warning in warnings:
            log.warning("%s", warning)
        self._rows, self._weekly = fresh._rows, fresh._weekly
        return True


def _file_version(path: Path) -> bytes | None:
    """The file's digest (a roster is a few kilobytes; a modification time can miss an edit
    within its resolution); None while it cannot be read."""
    try:
        return hashlib.blake2b(path.read_bytes(), digest_size=16).digest()
    except OSError:
        return None


def _raise_roster_error(source: str, problems: list[Problem]) -> None:
    raise RosterError(problems)


def _log_refusal(source: str, problems: list[Problem]) -> None:
    log.error(
        "duty roster %s edited with errors, the edit is refused and the roster before it stays"
        " (run hydro check): %s",
        source,
        "; ".join(map(str, problems)),
    )


def load_roster(
    path: Path | None, zone: str, fallback: Sequence[DutyOfficer], *, today: dt.date
) -> DutyRoster:
    """The roster, its warnings logged, watched for edits; RosterError on any error. No file:
    the fallback."""
    if path is None:
        log.info("duty: no roster (duty.roster); the duty desk is sms.duty_officers")
        return DutyRoster(zone=zone, fallback=fallback)
    return WatchedRoster(path, zone, fallback, today=today)


def check_roster(
    path: Path | None, zone: str, fallback: Sequence[DutyOfficer], *, today: dt.date
) -> tuple[DutyRoster, list[Problem], list[Problem]]:
    """The roster of ``path`` with its errors and warnings (days from ``today`` on that no
    officer covers). ``path`` None: no roster, only ``fallback``."""
    if path is None:
        return DutyRoster(zone=zone, fallback=fallback), [], []
    source = str(path)
    problems: list[Problem] = []
    rows = _read(path, ZoneInfo(zone), problems)
    if rows is not None and not problems:
        _check_shifts(source, rows, problems)
    roster = DutyRoster(rows or (), zone=zone, fallback=fallback, source=source)
    if problems:
        return roster, problems, []
    return roster, [], _uncovered_days(roster, rows or [], ZoneInfo(zone), today)


def _read(path: Path, zone: ZoneInfo, problems: list[Problem]) -> list[_Row] | None:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # Excel's UTF-8 starts with a BOM
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(source, f"cannot read the duty roster as UTF-8: {exc}"))
        return None
    reader = csv.reader(text.splitlines())
    aliases = column_aliases(COLUMNS)
    header = [aliases.get(h.strip(), h.strip()) for h in next(reader, [])]
    unknown = [h for h in header if h not in COLUMNS]
    missing = [c for c in COLUMNS if c not in header]
    if unknown or missing:
        problems.append(
            Problem(
                source,
                "the header must be start,end,role,name,phone (or 开始,结束,岗位,姓名,电话)"
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                + (f"; missing: {', '.join(missing)}" if missing else ""),
                1,
            )
        )
        return None
    rows = []
    for line, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        fields = {h: v.strip() for h, v in zip(header, values, strict=False)}
        row = _row(fields, line, zone, source)
        if isinstance(row, _Row):
            rows.append(row)
        else:
            problems.extend(row)
    weekly = {r.weekly for r in rows}
    if len(weekly) > 1:
        problems.append(
            Problem(source, "mixes dated shifts and weekly ones (Mon 08:00): use one kind")
        )
    return rows


def _row(fields: Mapping[str, str], line: int, zone: ZoneInfo, source: str) -> _Row | list[Problem]:
    problems: list[str] = []
    role = _ROLES.get(fields.get("role", ""))
    if role is None:
        problems.append(f"role {fields.get('role', '')!r} is not 值班员/officer or 带班领导/leader")
    name = fields.get("name", "")
    if not name:
        problems.append("name is empty")
    phone = normalise_phone(fields.get("phone", ""))
    if phone is None:
        problems.append(f"phone {fields.get('phone', '')!r} is not a valid phone number")
    start = _when(fields.get("start", ""), zone)
    end = _when(fields.get("end", ""), zone)
    for column, value in (("start", start), ("end", end)):
        if value is None:
            problems.append(
                f"{column} {fields.get(column, '')!r} is neither a date-time like"
                " 2026-12-01 08:00 nor a weekday and time like Mon 08:00"
            )
    if start is not None and end is not None:
        if (start.tzinfo is None) != (end.tzinfo is None):
            problems.append("start and end must both be dated or both weekly")
        elif start == end or (start.tzinfo is not None and end < start):
            problems.append(f"end {fields['end']} is not after start {fields['start']}")
    if problems or role is None or phone is None or start is None or end is None:
        return [Problem(source, message, line) for message in problems]
    if start.tzinfo is None and end < start:
        end += _WEEK  # over Sunday night into Monday
    return _Row(role, name, phone, start, end, line)


def _when(text: str, zone: ZoneInfo) -> dt.datetime | None:
    day, _, clock = text.partition(" ")
    weekday = _WEEKDAYS.get(day.lower())
    try:
        if weekday is not None:
            at = dt.time.fromisoformat(clock.strip())
            return _WEEK_OF + dt.timedelta(days=weekday, hours=at.hour, minutes=at.minute)
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _check_shifts(source: str, rows: Sequence[_Row], problems: list[Problem]) -> None:
    """Overlaps and gaps within each role; a weekly roster must cover its whole week."""
    if not any(r.role is Role.DUTY for r in rows):
        problems.append(Problem(source, "no 值班员 (officer) on the roster"))
    for role in (Role.DUTY, Role.LEADER):
        # People sharing a shift (the same start and end) are one span.
        spans: dict[tuple[dt.datetime, dt.datetime], _Row] = {}
        for r in sorted((r for r in rows if r.role is role), key=_order):
            spans.setdefault((r.start, r.end), r)
        ordered = list(spans.items())
        if not ordered:
            continue
        (first_start, first_end), first = ordered[0]
        if first.weekly:  # the week goes round to its first shift
            ordered.append(((first_start + _WEEK, first_end + _WEEK), first))
        reach, last = first_end, first
        for (start, end), row in ordered[1:]:
            if start < reach:
                problems.append(
                    Problem(source, f"{_name(role)} shift overlaps line {last.line}'s", row.line)
                )
            elif start > reach:
                problems.append(
                    Problem(
                        source,
                        f"no {_name(role)} from the end of line {last.line}'s shift to the start"
                        f" of line {row.line}'s",
                        row.line,
                    )
                )
            if end > reach:
                reach, last = end, row
    _check_duplicates(source, rows, problems)


def _order(row: _Row) -> tuple[dt.datetime, dt.datetime, int]:
    return (row.start, row.end, row.line)


def _check_duplicates(source: str, rows: Sequence[_Row], problems: list[Problem]) -> None:
    seen: dict[tuple[object, ...], int] = {}
    for r in rows:
        key = (r.role, r.phone, r.start, r.end)
        if key in seen:
            problems.append(Problem(source, f"repeats line {seen[key]}", r.line))
        seen.setdefault(key, r.line)


def _name(role: Role) -> str:
    return "值班员" if role is Role.DUTY else "带班领导"


def _uncovered_days(
    roster: DutyRoster, rows: Sequence[_Row], zone: ZoneInfo, today: dt.date
) -> list[Problem]:
    if not rows or rows[0].weekly:
        return []  # a weekly roster covers every week
    missing = []
    for n in range(LOOKAHEAD_DAYS):
        day = today + dt.timedelta(days=n)
        start = dt.datetime.combine(day, dt.time(), zone)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
        first = min(r.start for r in rows if r.role is Role.DUTY)
        last = max(r.end for r in rows if r.role is Role.DUTY)
        if start < first or end > last:
            missing.append(day.isoformat())
    if not missing:
        return []
    return [
        Problem(
            roster.source,
            f"no 值班员 on the roster for {', '.join(missing)}: sms.duty_officers are told instead",
            warning=True,
        )
    ]
