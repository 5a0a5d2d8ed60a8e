"""``hydro api``: only the HTTP API and web page (``hydro run`` serves them too)."""

from __future__ import annotations

import argparse

from hydro import app
from hydro.cli._common import Subparsers, add_command, run_async


def register(subparsers: Subparsers[argparse.ArgumentParser]) -> None:
    api = add_command(
        subparsers,
        "api",
        "serve only the HTTP API and the web page (api.host, api.port), e.g. a second instance"
        " behind a load balancer; hydro run serves them as well",
        """
  HYDRO_API__TOKENS=duty:operator:$(openssl rand -hex 16) hydro api
  HYDRO_API__PORT=9000 hydro api
""",
    )
    api.set_defaults(handler=_api)


def _api(args: argparse.Namespace) -> int:
    config = app.configure(args.config)
    run_async(app.run_api(config))
    return 0
