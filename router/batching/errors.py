"""Errors of the batching lever.

BatchingError                 any batching failure; the requests it held go the normal way
└── BatchApiError             a Batch API operation failed (provider, operation, reason kept)
"""

from __future__ import annotations


class BatchingError(Exception):
    """Base of batching errors."""


class BatchApiError(BatchingError):
    """A Batch API call (upload, create, retrieve, content, list) failed after its retries."""

    def __init__(self, provider: str, operation: str, reason: str) -> None:
        super().__init__(f"{provider} batch {operation}: {reason}")
        self.provider = provider
        self.operation = operation
        self.reason = reason
