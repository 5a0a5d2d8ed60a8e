"""``hydro api``: only the HTTP API and web page (``hydro run`` serves them too)."""

from __future__ import annotations

from hydro import app
from hydro.cli._common import Command, serving

COMMANDS = (
    Command(
        "api",
        "serve only the HTTP API and the web page (api.host, api.port), e.g. a second instance"
        " behind a load balancer; hydro run serves them as well",
        """
  HYDRO_API__TOKENS=duty:operator:$(openssl rand -hex 16) hydro api
  HYDRO_API__PORT=9000 hydro api
""",
        serving(app.run_api),
    ),
)
