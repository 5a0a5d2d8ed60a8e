"""How every hydro client reaches the broker: address, credentials, protocol version and TLS
from :class:`MqttConfig`, so the ingestor and the simulator never drift apart."""

from __future__ import annotations

import asyncio
import secrets
import ssl
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

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
    """None if the broker answers an MQTT connect now (over TLS when configured), else why not.

    The probe connects without hydro's credentials, and a refusal for lack of them counts as an
    answer. With our credentials it would not be harmless: a broker that ties client ids to
    accounts (deploy/mosquitto, ``use_username_as_clientid``) gives every connection of hydro's
    account hydro's own id, and a probe's clean start would discard hydro's persistent session
    with every reading queued in it. So /readyz proves the broker is up, not that the password
    is right; a wrong one shows in the ingest log ("cannot reach broker ...: Not authorized").
    """
    options = connection_options(config) | {"username": None, "password": None}
    try:
        async with asyncio.timeout(_PROBE_TIMEOUT):
            async with aiomqtt.Client(identifier=f"hydro-readyz-{secrets.token_hex(8)}", **options):
                return None
    except MqttConnectError as exc:
        if _code(exc) in _REFUSED_FOR_CREDENTIALS:
            return None
        return f"unreachable: {exc}"
    except (aiomqtt.MqttError, TimeoutError) as exc:
        return f"unreachable: {exc or 'no answer in time'}"


# CONNACK codes that mean "the broker is there, but not for anonymous clients": MQTT 3.1.1's
# bad username or password (4) and not authorised (5), MQTT 5's 0x86 and 0x87.
_REFUSED_FOR_CREDENTIALS = frozenset({4, 5, 0x86, 0x87})


def _code(exc: aiomqtt.MqttCodeError) -> int | None:
    return exc.rc if isinstance(exc.rc, int) or exc.rc is None else exc.rc.value
