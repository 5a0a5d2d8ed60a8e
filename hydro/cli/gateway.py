"""``hydro gateway sl651``: the receiver that turns SL 651-2014 RTU frames into gateway readings."""

from __future__ import annotations

from hydro import app
from hydro.cli._common import Command, serving

COMMANDS = (
    Command(
        "gateway",
        "gateways hydro runs itself, converting a station protocol to MQTT readings",
        """
  hydro gateway sl651
""",
        commands=(
            Command(
                "sl651",
                "receive SL 651-2014 (水文监测数据通信规约) RTU frames over TCP on sl651.port,"
                " publish their readings to <mqtt.topic_prefix>/<sl651.gateway>/readings and"
                " answer each RTU once the broker has them; refused frames go to the quarantine",
                """
  hydro gateway sl651                              # sl651.host:sl651.port, default 0.0.0.0:6510
  HYDRO_SL651__PORT=5005 HYDRO_SL651__PASSWORD=1234 hydro gateway sl651
  hydro simulate --protocol sl651 --stations 20    # RTUs that report to it (another shell)
""",
                serving(app.run_sl651_gateway),
            ),
        ),
        metavar="PROTOCOL",
    ),
)
