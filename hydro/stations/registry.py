"""Reading the station registry: CSV files operators export from their spreadsheets.

Every bad row is reported with its file and line and left out, so ``hydro check`` shows an
operator all the fixes at once; ``load_registry`` refuses to start on any of them, because a
station silently missing is a station nobody gets warned about.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hydro.errors import Problem, RegistryError
from hydro.loading import column_aliases, normalise_phone
from hydro.models import (
    DEFAULT_REPORT_INTERVAL,
    MAX_REPORT_INTERVAL,
    FloodContact,
    FloodSeason,
    Recipient,
    Role,
    Station,
    StationKind,
    mask_phone,
)
from hydro.stations.contacts import (
    CONTACTS_FILE,
    check_contacts,
    contacts_path,
    missing_contacts,
)
from hydro.stations.curves import StorageCurve, StorageTable, curve_files, read_curves

# The header names we write, each with the Chinese names operators' spreadsheets use.
COLUMNS: Mapping[str, tuple[str, ...]] = {
    "code": ("测站编码", "站码", "测站编号"),
    "name": ("站名", "测站名称"),
    "kind": ("类型", "站类"),
    "prefecture": ("市州", "市(州)"),
    "county": ("区县", "县(区)"),
    "river": ("河流", "河名"),
    "lat": ("纬度",),
    "lon": ("经度",),
    "gateway": ("网关",),
    "timezone": ("时区",),
    "warning_level": ("警戒水位",),
    "guaranteed_level": ("保证水位",),
    "flood_limit_level": ("汛限水位",),
    "flood_season_start": ("汛期开始",),
    "flood_season_end": ("汛期结束",),
    "normal_level": ("正常蓄水位",),
    "design_flood_level": ("设计洪水位",),
    "admin_name": ("行政责任人",),
    "admin_phone": ("行政责任人电话",),
    "technical_name": ("技术责任人",),
    "technical_phone": ("技术责任人电话",),
    "patrol_name": ("巡查责任人",),
    "patrol_phone": ("巡查责任人电话",),
    "report_interval": ("报送间隔",),
    "sl651_address": ("遥测站地址",),
}
REQUIRED_COLUMNS = ("code", "name", "kind", "prefecture", "county", "lat", "lon")
_ALIASES = column_aliases(COLUMNS)
_KINDS = {
    "river": StationKind.RIVER,
    "河道": StationKind.RIVER,
    "河道站": StationKind.RIVER,
    "水位站": StationKind.RIVER,
    "水文站": StationKind.RIVER,
    "reservoir": StationKind.RESERVOIR,
    "水库": StationKind.RESERVOIR,
    "rain": StationKind.RAIN,
    "雨量": StationKind.RAIN,
    "雨量站": StationKind.RAIN,
}
_PERSON_COLUMNS = {
    Role.ADMINISTRATIVE: ("admin_name", "admin_phone"),
    Role.TECHNICAL: ("technical_name", "technical_phone"),
    Role.PATROL: ("patrol_name", "patrol_phone"),
}


@dataclass(frozen=True)
class Registry:
    """The valid stations, in file order, an index by code, the flood-control contacts and the
    reservoirs' stage-storage curves."""

    stations: tuple[Station, ...] = ()
    by_code: Mapping[str, Station] = field(default_factory=lambda: MappingProxyType({}))
    contacts: tuple[FloodContact, ...] = ()
    storage: StorageTable = field(default_factory=lambda: StorageTable.of((), {}))

    @classmethod
    def of(
        cls,
        stations: Iterable[Station],
        *,
        contacts: Iterable[FloodContact] = (),
        curves: Iterable[StorageCurve] = (),
    ) -> Registry:
        """``curves``: validated (``read_curves``), of reservoirs among ``stations``."""
        ordered = tuple(stations)
        by_code = MappingProxyType({s.code: s for s in ordered})
        return cls(ordered, by_code, tuple(contacts), StorageTable.of(curves, by_code))

    def flood_contacts(self, station: Station, level: Role) -> tuple[Recipient, ...]:
        """The 防汛负责人 of the station's county (``Role.COUNTY``) or prefecture."""
        county = station.county if level is Role.COUNTY else ""
        return tuple(
            c.person
            for c in self.contacts
            if c.person.role is level and c.prefecture == station.prefecture and c.county == county
        )

    def __len__(self) -> int:
        return len(self.stations)

    def get(self, code: str) -> Station | None:
        return self.by_code.get(code)


def reachable(registry: Registry, code: str, duty: Sequence[Recipient]) -> tuple[Recipient, ...]:
    """Everyone an alert at the station may reach, and so may confirm it: its persons, its
    county's and prefecture's 防汛负责人, the duty officers."""
    station = registry.get(code)
    if station is None:
        return tuple(duty)
    contacts = (registry.flood_contacts(station, level) for level in (Role.COUNTY, Role.PREFECTURE))
    return (*station.persons, *(p for found in contacts for p in found), *duty)


def pick_person(
    people: Sequence[Recipient], role: Role | None, phone: str | None
) -> Recipient | str:
    """The one person of ``people`` with the role and phone given (either may be None), or
    why there is not exactly one."""
    matches = [
        p
        for p in people
        if (role is None or p.role is role) and (phone is None or p.phone == phone)
    ]
    if len(matches) == 1:
        return matches[0]
    what = " ".join(filter(None, [role.value if role else None, phone and mask_phone(phone)]))
    if not matches:
        return f"nobody ({what}) is reached by this alert"
    return f"{len(matches)} persons match ({what}): give the phone"


def registry_warnings(path: Path, registry: Registry) -> list[Problem]:
    """What ``hydro check`` warns of and hydro runs with: places without flood contacts."""
    return missing_contacts(contacts_path(path), registry.stations, registry.contacts)


def load_registry(path: Path, default_timezone: str) -> Registry:
    registry, problems = check_registry(path, default_timezone)
    if problems:
        raise RegistryError(problems)
    return registry


def check_registry(path: Path, default_timezone: str) -> tuple[Registry, list[Problem]]:
    """The valid stations of ``path`` (a CSV file or a folder of them) and every problem found."""
    problems: list[Problem] = []
    stations: list[Station] = []
    first_seen: dict[str, str] = {}
    if not path.exists():
        return Registry(), [Problem(str(path), "station registry not found")]
    curves = curve_files(path)
    files = (
        sorted(f for f in path.glob("*.csv") if f not in curves and f.name != CONTACTS_FILE)
        if path.is_dir()
        else [path]
    )
    if not files:
        return Registry(), [Problem(str(path), "no *.csv files in the station registry folder")]
    for file in files:
        for line, station in _read_file(file, default_timezone, problems):
            where = f"{file}:{line}"
            first = first_seen.get(station.code)
            if first is not None:
                message = f"duplicate station code {station.code} (first at {first})"
                problems.append(Problem(str(file), message, line))
                continue
            first_seen[station.code] = where
            stations.append(station)
    contacts, contact_problems = check_contacts(contacts_path(path))
    by_code = {s.code: s for s in stations}
    found = read_curves(curves, by_code, problems)
    return Registry.of(stations, contacts=contacts, curves=found), problems + contact_problems


def _read_file(
    file: Path, default_timezone: str, problems: list[Problem]
) -> Iterator[tuple[int, Station]]:
    try:
        # utf-8-sig: Excel starts its UTF-8 exports with a byte-order mark.
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(str(file), f"cannot read as UTF-8: {exc}"))
        return
    if "\x00" in text:
        problems.append(Problem(str(file), "contains NUL bytes: not a CSV text file"))
        return
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None:
        problems.append(Problem(str(file), "empty file: the first line must be the header", 1))
        return
    columns: list[str | None] = []
    for raw in header:
        name = _ALIASES.get(raw.strip())
        if name is None and raw.strip():
            problems.append(Problem(str(file), f"unknown column {raw.strip()!r}", 1))
        columns.append(name)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        problems.append(Problem(str(file), f"missing column(s): {', '.join(missing)}", 1))
        return
    for index, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        row = {name: value.strip() for name, value in zip(columns, values, strict=False) if name}
        row_problems: list[str] = []
        station = _station(row, default_timezone, row_problems)
        problems.extend(Problem(str(file), message, index) for message in row_problems)
        if station is not None and not row_problems:
            yield index, station


def _station(row: Mapping[str, str], default_timezone: str, problems: list[str]) -> Station | None:
    code = row.get("code", "")
    name = row.get("name", "")
    label = f"station {code or '(no code)'}"
    if not code:
        problems.append("empty station code")
    if not name:
        problems.append(f"{label}: empty name")
    kind = _KINDS.get(row.get("kind", "").lower())
    if kind is None:
        problems.append(f"{label}: unknown kind {row.get('kind', '')!r} (river, reservoir or rain)")
    lat = _number(row, "lat", label, problems, required=True)
    lon = _number(row, "lon", label, problems, required=True)
    _check_coordinates(lat, lon, label, problems)
    levels = {
        column: _number(row, column, label, problems)
        for column in (
            "warning_level",
            "guaranteed_level",
            "flood_limit_level",
            "normal_level",
            "design_flood_level",
        )
    }
    season = _season(row, label, problems)
    if kind is not None:
        _check_levels(kind, levels, season, label, problems)
    timezone = row.get("timezone") or default_timezone
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"{label}: unknown time zone {timezone!r}")
    persons = tuple(_persons(row, label, problems))
    interval = _report_interval(row.get("report_interval", ""), label, problems)
    sl651_address = row.get("sl651_address") or None
    if sl651_address is not None and not (sl651_address.isdigit() and len(sl651_address) == 10):
        problems.append(f"{label}: sl651_address {sl651_address!r} is not ten digits")
    if problems or kind is None or lat is None or lon is None:
        return None
    return Station(
        code=code,
        name=name,
        kind=kind,
        prefecture=row.get("prefecture", ""),
        county=row.get("county", ""),
        river=row.get("river", ""),
        lat=lat,
        lon=lon,
        gateway=row.get("gateway") or None,
        timezone=timezone,
        flood_season=season,
        persons=persons,
        report_interval=interval,
        sl651_address=sl651_address,
        **levels,
    )


def _report_interval(raw: str, label: str, problems: list[str]) -> dt.timedelta:
    """Whole minutes, from one to a day: silence is judged against it, so a typo must not make
    a station silent at once (0) or never (a year)."""
    if not raw:
        return DEFAULT_REPORT_INTERVAL
    longest = int(MAX_REPORT_INTERVAL.total_seconds()) // 60
    if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= longest:
        return dt.timedelta(minutes=int(raw))
    problems.append(
        f"{label}: report_interval {raw!r} is not a whole number of minutes between 1 and {longest}"
    )
    return DEFAULT_REPORT_INTERVAL


def _number(
    row: Mapping[str, str], column: str, label: str, problems: list[str], *, required: bool = False
) -> float | None:
    raw = row.get(column, "")
    if not raw:
        if required:
            problems.append(f"{label}: {column} is empty")
        return None
    try:
        value = float(raw)
    except ValueError:
        problems.append(f"{label}: {column} {raw!r} is not a number")
        return None
    if not math.isfinite(value):
        problems.append(f"{label}: {column} {raw!r} is not a finite number")
        return None
    return value


def _check_coordinates(
    lat: float | None, lon: float | None, label: str, problems: list[str]
) -> None:
    if lat is not None and not -90 <= lat <= 90:
        hint = " (lat and lon swapped?)" if lon is not None and -90 <= lon <= 90 else ""
        problems.append(f"{label}: lat {lat} is outside -90..90{hint}")
    if lon is not None and not -180 <= lon <= 180:
        problems.append(f"{label}: lon {lon} is outside -180..180")


def _check_levels(
    kind: StationKind,
    levels: Mapping[str, float | None],
    season: FloodSeason | None,
    label: str,
    problems: list[str],
) -> None:
    if kind is StationKind.RIVER and levels["warning_level"] is None:
        problems.append(f"{label}: a river station needs warning_level (警戒水位)")
    if kind is StationKind.RESERVOIR and levels["normal_level"] is None:
        problems.append(f"{label}: a reservoir needs normal_level (正常蓄水位)")
    for lower, upper in (
        ("warning_level", "guaranteed_level"),
        ("flood_limit_level", "normal_level"),
        ("normal_level", "design_flood_level"),
        ("flood_limit_level", "design_flood_level"),
    ):
        low, high = levels[lower], levels[upper]
        if low is not None and high is not None and low > high:
            problems.append(f"{label}: {lower} {low} is above {upper} {high}")
    if levels["flood_limit_level"] is not None and season is None:
        problems.append(
            f"{label}: flood_limit_level needs flood_season_start and flood_season_end (MM-DD)"
        )


def _season(row: Mapping[str, str], label: str, problems: list[str]) -> FloodSeason | None:
    start_raw, end_raw = row.get("flood_season_start", ""), row.get("flood_season_end", "")
    if not start_raw and not end_raw:
        return None
    start = _month_day(start_raw, "flood_season_start", label, problems)
    end = _month_day(end_raw, "flood_season_end", label, problems)
    if start is None or end is None:
        return None
    return FloodSeason(start, end)


_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _month_day(raw: str, column: str, label: str, problems: list[str]) -> tuple[int, int] | None:
    month_text, _, day_text = raw.partition("-")
    if month_text.isdigit() and day_text.isdigit():
        month, day = int(month_text), int(day_text)
        if 1 <= month <= 12 and 1 <= day <= _DAYS_IN_MONTH[month - 1]:
            return month, day
    problems.append(f"{label}: {column} {raw!r} is not a date like 05-01 (MM-DD)")
    return None


def _persons(row: Mapping[str, str], label: str, problems: list[str]) -> Iterator[Recipient]:
    for role, (name_column, phone_column) in _PERSON_COLUMNS.items():
        name, phone = row.get(name_column, ""), row.get(phone_column, "")
        if not name or not phone:
            problems.append(
                f"{label}: missing {role.value} responsible person ({name_column}, {phone_column})"
            )
            continue
        normalised = normalise_phone(phone)
        if normalised is None:
            problems.append(f"{label}: {phone_column} {phone!r} is not a valid phone number")
            continue
        yield Recipient(role, name, normalised)
