"""``hydro run`` and ``hydro ingest``: the long-running service."""

from __future__ import annotations

from hydro import app
from hydro.cli._common import Command, serving

COMMANDS = (
    Command(
        "run",
        "run everything hydro does until Ctrl-C or SIGTERM: ingest gateway readings, evaluate"
        " the alert rules and send SMS",
        """
  hydro run                          # config.yaml in this folder, or the built-in defaults
  hydro --config /etc/hydro/config.yaml run
  HYDRO_DATABASE__URL=postgresql://hydro@db/hydro hydro run
""",
        serving(app.run_everything),
    ),
    Command(
        "ingest",
        "only ingest: subscribe to gateway readings and store them (migrates the schema first)",
        """
  hydro ingest
  HYDRO_MQTT__SHARED_GROUP=ingest HYDRO_MQTT__CLIENT_ID=ingest-2 hydro ingest   # a second process
""",
        serving(app.run_ingest),
    ),
)
