"""The configured providers, by name, and which of them offers a model."""

from __future__ import annotations

from collections.abc import Iterable

from router.providers.client import ProviderClient


class ProviderRegistry:
    """Provider clients by name; the first provider that offers a model serves it."""

    def __init__(self, clients: Iterable[ProviderClient]) -> None:
        self._clients = {client.name: client for client in clients}

    def get(self, name: str) -> ProviderClient:
        """The client of a provider; KeyError if it is not configured."""
        return self._clients[name]

    def offering(self, model: str) -> ProviderClient | None:
        """The first provider that offers model, or None."""
        for client in self._clients.values():
            if model in client.config.models:
                return client
        return None

    def names(self) -> list[str]:
        """Names of every configured provider."""
        return list(self._clients)

    @property
    def simulated(self) -> bool:
        """Whether any provider is the simulated one."""
        return any(c.config.simulated for c in self._clients.values())

    async def close(self) -> None:
        """Close every client."""
        for client in self._clients.values():
            await client.close()
