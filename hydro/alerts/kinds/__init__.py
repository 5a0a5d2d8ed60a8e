"""The rule kinds a tick evaluates, in order: one module each, one line here to add one.

Silences come after the kinds whose open alerts a silence message names (levels, rainfall).
"""

from hydro.alerts.kind import KindFactory
from hydro.alerts.kinds.levels import Levels
from hydro.alerts.kinds.rainfall import Rainfall
from hydro.alerts.kinds.rise import Rises
from hydro.alerts.kinds.silence import Silences

KINDS: tuple[KindFactory, ...] = (Levels, Rises, Rainfall, Silences)

__all__ = ["KINDS"]
