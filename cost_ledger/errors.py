"""Errors of the cost ledger.

LedgerError
├── CatalogError           the price catalog file is missing, unreadable or inconsistent
│   └── UnknownModelError  a model is not in the catalog (carries model and catalog version)
├── InvalidUsageError      token usage that cannot be priced (carries the token counts)
└── ReferenceFileError     the cost reference figures cannot be read
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every cost-ledger error."""


class CatalogError(LedgerError):
    """The price catalog cannot be used; the message says which entry and why."""


class UnknownModelError(CatalogError, LookupError):
    """A model has no price in the catalog."""

    def __init__(self, model: str, catalog_version: str) -> None:
        super().__init__(f"model {model!r} is not in price catalog {catalog_version}")
        self.model = model
        self.catalog_version = catalog_version


class InvalidUsageError(LedgerError, ValueError):
    """Token counts that are negative, or more cached input tokens than input tokens."""

    def __init__(self, input_tokens: int, cached_input_tokens: int, output_tokens: int) -> None:
        super().__init__(
            f"cannot price usage: input={input_tokens} cached_input={cached_input_tokens}"
            f" output={output_tokens}"
        )
        self.input_tokens = input_tokens
        self.cached_input_tokens = cached_input_tokens
        self.output_tokens = output_tokens


class ReferenceFileError(LedgerError):
    """The reference cost figures (cost_reference.toml) cannot be read; reason says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
