"""The lever stages of the router, built from Settings: pattern, trim, cache, dedup.

They run in that order, ahead of routing: the pattern responder needs no I/O at all;
trimming comes before the cache and dedup so that they key on what is actually sent; the
cache answers before dedup, which coalesces only what the cache could not answer.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from faststream.nats import NatsBroker

from bus.liveness import Liveness
from bus.settings import Settings
from cost_ledger.catalog import PriceCatalog
from router.levers.fingerprint import fingerprinter
from router.pipeline import Stage
from router.stages.cache import CacheStage, ExactCache, SemanticStore, ShadowCheck
from router.stages.dedup import DedupStage, NearDuplicates
from router.stages.flight import FlightChannel, FlightStore
from router.stages.pattern import PatternStage
from router.stages.trim import TrimStage, trim_policies


def lever_stages(
    settings: Settings,
    *,
    catalog: PriceCatalog,
    redis: aioredis.Redis,
    broker: NatsBroker,
    semantic: SemanticStore | None = None,
    near_duplicates: NearDuplicates | None = None,
    shadow: ShadowCheck | None = None,
    liveness: Liveness | None = None,
) -> list[Stage]:
    """The enabled lever stages, outermost first.

    semantic (the semantic cache) is asked after an exact-cache miss; near_duplicates (the
    same object, usually) is asked by dedup before it coalesces exact duplicates; shadow
    re-asks a share of semantic hits off the response path; liveness keeps dedup's claims
    alive (bus.liveness).
    """
    key = fingerprinter(catalog)
    stages: list[Stage] = []
    if settings.enable_pattern:
        stages.append(PatternStage(settings.pattern_task_types, catalog, settings.baseline_model))
    if settings.enable_trim:
        policies = trim_policies(
            settings.history_token_budget,
            settings.max_output_tokens_cap,
            settings.history_prune_step,
        )
        stages.append(TrimStage(policies, catalog, settings.baseline_model))
    exact = None
    if settings.enable_exact_cache:
        exact = ExactCache(
            redis,
            ttl_s=settings.cache_ttl_s,
            default_ttl_s=settings.cache_default_ttl_s,
            max_entries=settings.cache_max_entries,
        )
    if exact is not None or semantic is not None:
        stages.append(CacheStage(key=key, exact=exact, semantic=semantic, shadow=shadow))
    if settings.enable_dedup:
        store = FlightStore(
            redis,
            claim_ttl_s=settings.dedup_claim_ttl_s,
            result_ttl_s=settings.dedup_result_ttl_s,
            liveness=liveness,
        )
        stages.append(
            DedupStage(
                key=key,
                store=store,
                channel=FlightChannel(broker),
                claim_ttl_s=settings.dedup_claim_ttl_s,
                near_duplicates=near_duplicates,
            )
        )
    return stages
