"""The NATS connection of operators' commands (`flipsync budget|ledger|flags|experiment`)."""

from __future__ import annotations

import contextlib
from typing import Any

from nats.aio.client import Client as NatsClient

from bus.broker import server_list
from bus.nats_auth import client_options
from bus.reachable import reach_nats
from bus.settings import Settings


def settings_client_options(settings: Settings) -> dict[str, Any]:
    """nats-py options for settings' NATS_USER and NATS_PASSWORD; none without a user."""
    if settings.nats_user is None:
        return {}
    password = settings.nats_password.get_secret_value() if settings.nats_password else None
    return client_options(settings.nats_user, password)


async def connect_cli(settings: Settings, **options: Any) -> NatsClient:
    """A nats-py connection to every server of NATS_URL, as settings' NATS user (if any)."""
    if settings.nats_url is None:
        raise ValueError("NATS_URL is not set")
    nc = NatsClient()
    servers = server_list(settings.nats_url)
    try:
        await reach_nats(
            settings.nats_url,
            lambda: nc.connect(servers, **settings_client_options(settings), **options),
            settings.connect_timeout_s,
        )
    except BaseException:
        # A refused connection (bad credentials) otherwise leaves its socket open.
        with contextlib.suppress(Exception):
            await nc.close()
        raise
    return nc
