"""Passwords of NATS users: random ones, their bcrypt hashes, and private env files."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

import bcrypt

from bus.nats_auth.users import NatsUser, hash_variable

DEPLOY_ROUNDS = 11
"""bcrypt cost of deployed passwords (~0.1 s per check, paid once per connection)."""
EMBEDDED_ROUNDS = 4
"""bcrypt cost of the embedded server's throwaway passwords: fast to start."""


def hash_password(password: str, rounds: int = DEPLOY_ROUNDS) -> str:
    """The bcrypt hash nats-server checks a password against."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def new_passwords(users: Iterable[NatsUser]) -> dict[str, str]:
    """A fresh random password per user."""
    return {user.name: secrets.token_urlsafe(24) for user in users}


def server_environment(passwords: Mapping[str, str], rounds: int = DEPLOY_ROUNDS) -> dict[str, str]:
    """The variables nats-server needs: each user's hash, quoted so `$` is not a reference."""
    return {
        hash_variable(user): f'"{hash_password(password, rounds)}"'
        for user, password in passwords.items()
    }


def write_private(path: Path, variables: Mapping[str, str]) -> None:
    """Write variables as NAME=value lines to a file only its owner may read."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text("".join(f"{name}={value}\n" for name, value in variables.items()))
