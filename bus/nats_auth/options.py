"""Connect options of one NATS user, for nats-py and FastStream, and the embedded server's users."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from faststream.security import SASLPlaintext

from bus.nats_auth.config import render_auth_conf
from bus.nats_auth.passwords import EMBEDDED_ROUNDS, new_passwords, server_environment
from bus.nats_auth.users import all_users, inbox_prefix
from bus.settings import Settings


def client_options(user: str, password: str | None) -> dict[str, Any]:
    """nats-py connect options of one user (nats.connect(**options))."""
    options: dict[str, Any] = {"user": user, "inbox_prefix": inbox_prefix(user)}
    if password is not None:
        options["password"] = password
    return options


def broker_options(user: str, password: str | None) -> dict[str, Any]:
    """FastStream NatsBroker options of one user (make_broker(url, **options))."""
    return {
        "security": SASLPlaintext(username=user, password=password or ""),
        "inbox_prefix": inbox_prefix(user),
    }


def settings_broker_options(settings: Settings) -> dict[str, Any]:
    """Broker options for settings' NATS_USER and NATS_PASSWORD; none without a user."""
    if settings.nats_user is None:
        return {}
    password = settings.nats_password.get_secret_value() if settings.nats_password else None
    return broker_options(settings.nats_user, password)


@dataclass(frozen=True)
class EmbeddedAuth:
    """What the embedded nats-server needs to enforce FlipSync's users, and their passwords."""

    config: str
    environment: dict[str, str]
    passwords: dict[str, str]

    def options(self, user: str) -> dict[str, Any]:
        """nats-py connect options of one user of this server."""
        return client_options(user, self.passwords[user])

    def broker_options(self, user: str) -> dict[str, Any]:
        """FastStream broker options of one user of this server."""
        return broker_options(user, self.passwords[user])


def embedded_auth(settings: Settings, agents: Iterable[str]) -> EmbeddedAuth:
    """Users for an embedded server: throwaway passwords, except settings' own user's if set."""
    users = all_users([*agents, *settings.extra_agents], settings.nats_tenants)
    passwords = new_passwords(users)
    if settings.nats_user is not None and settings.nats_password is not None:
        if settings.nats_user not in passwords:
            raise ValueError(f"NATS_USER {settings.nats_user!r} is not a FlipSync NATS user")
        passwords[settings.nats_user] = settings.nats_password.get_secret_value()
    return EmbeddedAuth(
        config=render_auth_conf(users),
        environment=server_environment(passwords, EMBEDDED_ROUNDS),
        passwords=passwords,
    )
