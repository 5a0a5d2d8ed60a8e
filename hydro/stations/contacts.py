"""Reading ``flood_contacts.csv``: the counties' and prefectures' 防汛负责人 a 叫应 ladder climbs
to when none of a station's persons answers.

The file lives beside the station registry (in its folder, or beside the registry file) and is
not a station file. Bad rows are problems with file and line, as in the registry; a county that
has stations but no contact is a warning: hydro runs, and a ladder that would climb to it
records why it could not.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from hydro.errors import Problem
from hydro.loading import column_aliases, normalise_phone
from hydro.models import FloodContact, Recipient, Role, Station

CONTACTS_FILE = "flood_contacts.csv"
CONTACT_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "prefecture": ("市州", "市(州)"),
    "county": ("区县", "县(区)"),
    "role": ("级别",),
    "name": ("姓名", "防汛负责人"),
    "phone": ("电话", "手机"),
}
_ALIASES = column_aliases(CONTACT_COLUMNS)
_ROLES = {
    alias: role
    for role, aliases in (
        (Role.COUNTY, ("county", "县")),
        (Role.PREFECTURE, ("prefecture", "市州")),
    )
    for alias in aliases
}


def contacts_path(registry_path: Path) -> Path:
    return (registry_path if registry_path.is_dir() else registry_path.parent) / CONTACTS_FILE


def check_contacts(path: Path) -> tuple[list[FloodContact], list[Problem]]:
    """The valid contacts of ``path`` (none when there is no such file) and every problem."""
    problems: list[Problem] = []
    contacts = list(_read(path, problems)) if path.exists() else []
    return contacts, problems


def missing_contacts(
    path: Path, stations: Iterable[Station], contacts: Iterable[FloodContact]
) -> list[Problem]:
    """A warning naming each county (and prefecture) that has stations but nobody a ladder
    could climb to."""
    problems: list[Problem] = []
    have = {(c.prefecture, c.county) for c in contacts}
    places = sorted({(s.prefecture, s.county) for s in stations})
    missing = [f"{p}{c}" for p, c in places if (p, c) not in have]
    missing += sorted({f"{p}(市州)" for p, _ in places if (p, "") not in have})
    if missing:
        problems.append(
            Problem(
                str(path),
                f"no 防汛负责人 for {len(missing)} place(s) with stations: {', '.join(missing)}"
                " (a 叫应 ladder reaching them records that and moves on)",
                warning=True,
            )
        )
    return problems


def _read(path: Path, problems: list[Problem]) -> Iterator[FloodContact]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(str(path), f"cannot read as UTF-8: {exc}"))
        return
    # Lines starting with # are comments (the sample says its people are invented).
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if not line.startswith("#")]
    rows = list(zip((n for n, _ in lines), csv.reader(line for _, line in lines), strict=True))
    if not rows:
        problems.append(Problem(str(path), "empty file: the first line must be the header", 1))
        return
    header_line, header = rows[0]
    columns = [_ALIASES.get(raw.strip()) for raw in header]
    missing = [c for c in CONTACT_COLUMNS if c not in columns]
    if missing or None in columns:
        unknown = [raw.strip() for raw, name in zip(header, columns, strict=True) if name is None]
        what = f"missing column(s): {', '.join(missing)}" if missing else ""
        what += f"{'; ' if what else ''}unknown column(s): {', '.join(unknown)}" if unknown else ""
        problems.append(Problem(str(path), what, header_line))
        return
    for line, values in rows[1:]:
        if any(v.strip() for v in values):
            row = {name: v.strip() for name, v in zip(columns, values, strict=False) if name}
            contact = _contact(row, str(path), line, problems)
            if contact is not None:
                yield contact


def _contact(
    row: Mapping[str, str], source: str, line: int, problems: list[Problem]
) -> FloodContact | None:
    role = _ROLES.get(row.get("role", "").lower())
    prefecture, county = row.get("prefecture", ""), row.get("county", "")
    phone = normalise_phone(row.get("phone", ""))
    found = []
    if role is None:
        found.append(f"unknown role {row.get('role', '')!r} (county or prefecture)")
    if not prefecture:
        found.append("empty prefecture")
    if role is Role.COUNTY and not county:
        found.append("a county contact needs its county")
    if role is Role.PREFECTURE and county:
        found.append("a prefecture contact has no county")
    if not row.get("name"):
        found.append("empty name")
    if phone is None:
        found.append(f"phone {row.get('phone', '')!r} is not a valid phone number")
    problems.extend(Problem(source, f"contact: {message}", line) for message in found)
    if found or role is None or phone is None:
        return None
    return FloodContact(prefecture, county, Recipient(role, row["name"], phone))
