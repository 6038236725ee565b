"""The servers a stack uses: those NATS_URL and REDIS_URL name, else embedded ones started
here (in the data directory when there is one), and stopped again if starting one fails."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents.specs import ALL_SPECS
from bus.embedded import EmbeddedNats, EmbeddedRedis
from bus.nats_auth import ADMIN as NATS_ADMIN
from bus.nats_auth import EmbeddedAuth, embedded_auth, settings_broker_options
from bus.settings import Settings


@dataclass(frozen=True, kw_only=True)
class Servers:
    """Where a stack's NATS and Redis are, and the embedded servers started for it."""

    nats_url: str
    """NATS_URL, or the embedded nats-server's."""
    redis_url: str
    """REDIS_URL, or the embedded redis-server's."""
    nats_options: dict[str, Any]
    """The broker's connect options: NATS_USER's, or the embedded server's admin user's."""
    nats_auth: EmbeddedAuth | None
    """The embedded nats-server's users and passwords, when it runs with FLIPSYNC_NATS_AUTH."""
    embedded: list[EmbeddedNats | EmbeddedRedis]
    """The servers started here, in the order they started (the stack stops them)."""


async def start_servers(settings: Settings) -> Servers:
    """Start an embedded nats-server unless NATS_URL is set, and a redis-server unless
    REDIS_URL is; a failure stops those already started before it is raised."""
    embedded: list[EmbeddedNats | EmbeddedRedis] = []
    try:
        nats_url = settings.nats_url
        nats_options = settings_broker_options(settings)
        nats_auth: EmbeddedAuth | None = None
        if nats_url is None:
            if settings.nats_auth:  # FlipSync's users and permissions, throwaway passwords
                nats_auth = embedded_auth(settings, [spec.name for spec in ALL_SPECS])
                nats_options = nats_auth.broker_options(settings.nats_user or NATS_ADMIN)
            nats = EmbeddedNats(
                settings.data_dir / "nats" if settings.data_dir else None,
                extra_config=nats_auth.config if nats_auth else "",
                env=nats_auth.environment if nats_auth else None,
            )
            await nats.start()
            embedded.append(nats)
            nats_url = nats.url
        redis_url = settings.redis_url
        if redis_url is None:
            redis = EmbeddedRedis(
                settings.data_dir / "redis" if settings.data_dir else None,
                persist=settings.data_dir is not None,
            )
            await redis.start()
            embedded.append(redis)
            redis_url = redis.url
    except BaseException:
        for server in reversed(embedded):
            await server.stop()
        raise
    return Servers(
        nats_url=nats_url,
        redis_url=redis_url,
        nats_options=nats_options,
        nats_auth=nats_auth,
        embedded=embedded,
    )
