"""The configured providers, by name, and which of them offers a model."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from router.providers.client import ProviderClient


class Server(Protocol):
    """Something the registry started and stops with it (a named simulated provider)."""

    async def stop(self) -> None:
        """Stop serving."""
        ...


class ProviderRegistry:
    """Provider clients by name; the first provider that offers a model serves it."""

    def __init__(self, clients: Iterable[ProviderClient], servers: Iterable[Server] = ()) -> None:
        self._clients = {client.name: client for client in clients}
        self._servers = list(servers)

    def get(self, name: str) -> ProviderClient:
        """The client of a provider; KeyError if it is not configured."""
        return self._clients[name]

    def offering(self, model: str) -> ProviderClient | None:
        """The first provider that offers model, or None."""
        for client in self._clients.values():
            if model in client.config.models:
                return client
        return None

    def offering_all(self, model: str) -> list[ProviderClient]:
        """Every provider that offers model, in configuration order."""
        return [c for c in self._clients.values() if model in c.config.models]

    def names(self) -> list[str]:
        """Names of every configured provider."""
        return list(self._clients)

    def clients(self) -> list[ProviderClient]:
        """Every configured provider's client, in configuration order."""
        return list(self._clients.values())

    @property
    def simulated(self) -> bool:
        """Whether any provider is the simulated one."""
        return any(c.config.simulated for c in self._clients.values())

    async def close(self) -> None:
        """Close every client, then stop the servers the registry started."""
        for client in self._clients.values():
            await client.close()
        for server in self._servers:
            await server.stop()
