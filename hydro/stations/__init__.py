"""The station registry: who measures what where, and whom to tell."""

from hydro.loading import normalise_phone
from hydro.stations.curves import (
    MEDIUM_CAPACITY,
    StorageCurve,
    StorageTable,
    size_class,
)
from hydro.stations.generate import (
    generate_curves,
    generate_stations,
    write_curves_csv,
    write_stations_csv,
)
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
    "MEDIUM_CAPACITY",
    "Registry",
    "StorageCurve",
    "StorageTable",
    "check_registry",
    "generate_curves",
    "generate_stations",
    "load_registry",
    "normalise_phone",
    "pick_person",
    "reachable",
    "registry_warnings",
    "size_class",
    "write_curves_csv",
    "write_stations_csv",
]
