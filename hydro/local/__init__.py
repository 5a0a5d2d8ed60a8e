"""Throw-away PostgreSQL and Mosquitto servers on this machine, for the tests and ``hydro demo``.

They run the system's own binaries (Debian packages ``postgresql`` and ``mosquitto``) on free
loopback ports with their data in a folder of the caller's choosing.
"""

from hydro.local.mosquitto import LocalMosquitto
from hydro.local.postgres import LocalPostgres, timescaledb_installed
from hydro.local.process import free_port

__all__ = ["LocalMosquitto", "LocalPostgres", "free_port", "timescaledb_installed"]
