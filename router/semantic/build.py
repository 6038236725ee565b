"""Building the semantic cache from Settings, once, at composition."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from bus.settings import Settings
from bus.settings_sections import SemanticSettings
from router.semantic.embedder import OnnxMiniLmEmbedder
from router.semantic.policy import NearDuplicatePolicy, policies
from router.semantic.protocol import Clock, Embedder
from router.semantic.store import SemanticCache


def build_embedder(config: SemanticSettings) -> Embedder:
    """The configured embedder (the packaged all-MiniLM-L6-v2 unless model_path is set)."""
    return OnnxMiniLmEmbedder(config.model_path, threads=config.threads)


def build_semantic_cache(
    settings: Settings,
    redis: aioredis.Redis,
    *,
    embedder: Embedder | None = None,
    clock: Clock = time.time,
) -> SemanticCache | None:
    """The semantic cache of a router replica, or None when enable_semantic_cache is off.

    Building the default embedder loads a 23 MB model (about a second); pass one embedder to
    every cache of a process to load it once. Call start() on the cache before serving.
    """
    if not settings.enable_semantic_cache:
        return None
    config = settings.semantic
    return SemanticCache(
        redis,
        embedder or build_embedder(config),
        policies=policies(
            config.thresholds,
            config.margins,
            config.ttl_s,
            config.default_ttl_s,
            config.error_bounds,
            config.default_error_bound,
            config.confidence,
        ),
        near_duplicates=NearDuplicatePolicy(
            task_types=config.near_duplicate_task_types,
            threshold=config.near_duplicate_threshold,
            window_s=config.near_duplicate_window_s,
        ),
        neighbours=config.neighbours,
        max_entries=config.max_entries,
        quotas=config.quotas,
        log_max_entries=config.log_max_entries,
        exact_below=config.exact_below,
        max_calibrators=config.max_calibrators,
        clock=clock,
    )
