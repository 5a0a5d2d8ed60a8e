"""``hydro run`` and ``hydro ingest``: the long-running service."""

from __future__ import annotations

import argparse

from hydro import app
from hydro.cli._common import Subparsers, add_command, run_async


def register(subparsers: Subparsers[argparse.ArgumentParser]) -> None:
    run = add_command(
        subparsers,
        "run",
        "run everything hydro does until Ctrl-C or SIGTERM: ingest gateway readings, evaluate"
        " the alert rules and send SMS",
        """
  hydro run                          # config.yaml in this folder, or the built-in defaults
  hydro --config /etc/hydro/config.yaml run
  HYDRO_DATABASE__URL=postgresql://hydro@db/hydro hydro run
""",
    )
    run.set_defaults(handler=_run)
    ingest = add_command(
        subparsers,
        "ingest",
        "only ingest: subscribe to gateway readings and store them (migrates the schema first)",
        """
  hydro ingest
  HYDRO_MQTT__SHARED_GROUP=ingest HYDRO_MQTT__CLIENT_ID=ingest-2 hydro ingest   # a second process
""",
    )
    ingest.set_defaults(handler=_ingest)


def _run(args: argparse.Namespace) -> int:
    run_async(app.run_everything(app.configure(args.config)))
    return 0


def _ingest(args: argparse.Namespace) -> int:
    run_async(app.run_ingest(app.configure(args.config)))
    return 0
