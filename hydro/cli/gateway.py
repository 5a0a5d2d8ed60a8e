"""``hydro gateway sl651``: the receiver that turns SL 651-2014 RTU frames into gateway readings."""

from __future__ import annotations

import argparse

from hydro import app
from hydro.cli._common import Subparsers, add_command, run_async


def register(subparsers: Subparsers[argparse.ArgumentParser]) -> None:
    gateway = add_command(
        subparsers,
        "gateway",
        "gateways hydro runs itself, converting a station protocol to MQTT readings",
        """
  hydro gateway sl651
""",
    )
    kinds = gateway.add_subparsers(dest="gateway_command", metavar="PROTOCOL", required=True)
    sl651 = add_command(
        kinds,
        "sl651",
        "receive SL 651-2014 (水文监测数据通信规约) RTU frames over TCP on sl651.port, publish"
        " their readings to <mqtt.topic_prefix>/<sl651.gateway>/readings and answer each RTU"
        " once the broker has them; refused frames go to the quarantine",
        """
  hydro gateway sl651                              # sl651.host:sl651.port, default 0.0.0.0:6510
  HYDRO_SL651__PORT=5005 HYDRO_SL651__PASSWORD=1234 hydro gateway sl651
  hydro simulate --protocol sl651 --stations 20    # RTUs that report to it (another shell)
""",
    )
    sl651.set_defaults(handler=_sl651)


def _sl651(args: argparse.Namespace) -> int:
    config = app.configure(args.config)
    run_async(app.run_sl651_gateway(config))
    return 0
