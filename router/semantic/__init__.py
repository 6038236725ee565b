"""Semantic cache and near-duplicate dedup: paraphrases of a safe task type share an answer.

SemanticLookup (protocol.py) is the interface the cache and dedup stages use; SemanticCache
(store.py) implements it; build_semantic_cache (build.py) makes one from Settings.
"""

from router.semantic.build import build_embedder, build_semantic_cache
from router.semantic.protocol import Clock, Embedder, SemanticLookup
from router.semantic.store import SemanticCache

__all__ = [
    "Clock",
    "Embedder",
    "SemanticCache",
    "SemanticLookup",
    "build_embedder",
    "build_semantic_cache",
]
