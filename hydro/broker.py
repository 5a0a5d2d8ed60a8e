"""How every hydro client reaches the broker: address, credentials, protocol version and TLS
from :class:`MqttConfig`, so the ingestor and the simulator never drift apart."""

from __future__ import annotations

import asyncio
import os
import ssl
from typing import Any

import aiomqtt

from hydro.config import MqttConfig

_PROBE_TIMEOUT = 3.0  # seconds; a readiness probe must answer before its caller gives up


def connection_options(config: MqttConfig) -> dict[str, Any]:
    """Keyword arguments for :class:`aiomqtt.Client` shared by every client hydro opens."""
    return {
        "hostname": config.host,
        "port": config.port,
        "username": config.username,
        "password": config.password.get_secret_value() if config.password else None,
        "protocol": (
            aiomqtt.ProtocolVersion.V5 if config.protocol == "5" else aiomqtt.ProtocolVersion.V311
        ),
        "keepalive": config.keepalive,
        "tls_params": (
            aiomqtt.TLSParameters(
                ca_certs=str(config.ca_file) if config.ca_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
            if config.tls
            else None
        ),
    }


async def broker_problem(config: MqttConfig) -> str | None:
    """None if a client with our credentials can connect now, else why not (for /readyz)."""
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT):
            async with aiomqtt.Client(
                identifier=f"{config.client_id}-readyz-{os.getpid()}", **connection_options(config)
            ):
                return None
    except (aiomqtt.MqttError, TimeoutError) as exc:
        return f"unreachable: {exc or 'no answer in time'}"
