"""The station registry: who measures what where, and whom to tell."""

from hydro.loading import normalise_phone
from hydro.stations.generate import generate_stations, write_stations_csv
from hydro.stations.registry import (
    COLUMNS,
    Registry,
    check_registry,
    load_registry,
    pick_person,
    reachable,
    registry_warnings,
)

__all__ = [
    "COLUMNS",
    "Registry",
    "check_registry",
    "generate_stations",
    "load_registry",
    "normalise_phone",
    "pick_person",
    "reachable",
    "registry_warnings",
    "write_stations_csv",
]
