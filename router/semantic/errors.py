"""Errors of the semantic cache.

SemanticError
└── EmbedderError              the embedding model cannot be loaded
    └── ModelFileError             the model file is missing or not the pinned one (path, sha256)

Lookups never raise these: a cache that cannot work is a miss. They surface at composition,
when the embedder is built.
"""

from __future__ import annotations

from pathlib import Path


class SemanticError(Exception):
    """Base of the semantic cache's errors."""


class EmbedderError(SemanticError):
    """The embedding model cannot be loaded."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ModelFileError(EmbedderError):
    """The model file is missing, or its sha256 is not the pinned one."""

    def __init__(self, path: Path, expected_sha256: str, actual_sha256: str | None) -> None:
        found = "missing" if actual_sha256 is None else f"sha256 {actual_sha256}"
        super().__init__(f"embedding model {path}: {found}, expected sha256 {expected_sha256}")
        self.path = path
        self.expected_sha256 = expected_sha256
        self.actual_sha256 = actual_sha256
