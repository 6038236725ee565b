"""The route stage in value mode: per-prompt difficulty moves requests between models, the
controller keeps the weight near its target, and discounted counts in Redis forget."""

from __future__ import annotations

import numpy as np
import redis.asyncio as aioredis

from bus.settings_sections import RoutingSettings
from router.context import RequestContext
from router.providers.registry import ProviderRegistry
from router.routing.calibrate import ValueController
from router.routing.config import RoutingConfig
from router.routing.difficulty import DifficultyModel
from router.routing.pinning import SessionPins
from router.routing.policy import Policy
from router.routing.predict import PromptPredictor
from router.routing.quality import QualitySignal, SignalKind
from router.routing.quality_store import QualityStore, QualityView
from router.stages.route import RouteStage
from tests.test_route_stage import CATALOG, registry, request

__all__ = ["registry"]  # the fixture, imported for these tests


class TwoWayEmbedder:
    """Stand-in embedder: 'hard' prompts point one way, all others the other."""

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors in 2 dimensions."""
        return np.array([[0.0, 1.0] if "hard" in t else [1.0, 0.0] for t in texts])


# Difficulty -2 for easy prompts, +1 for hard ones; slope 1.
MODEL = DifficultyModel(weights=np.array([-2.0, 1.0]), bias=0.0, slope=1.0)


def stage(
    registry: ProviderRegistry,
    redis: aioredis.Redis,
    controller: ValueController | None = None,
    pins: SessionPins | None = None,
) -> RouteStage:
    """A value-mode stage over the real catalog, no floors."""
    routing = RoutingSettings(task_quality_floors={}, value_weight=0.1, explore_share=0.0)
    view = QualityView(
        QualityStore(redis), {m.name: m.quality for m in CATALOG.models()}, refresh_s=0.0
    )
    predictor = PromptPredictor(MODEL, TwoWayEmbedder())
    predictor.observe("qa", 0.0)  # the task type's typical prompt has difficulty 0
    return RouteStage(
        registry,
        CATALOG,
        config=RoutingConfig.from_settings(routing),
        policy=Policy.CHEAPEST,
        quality=view,
        predictor=predictor,
        controller=controller,
        pins=pins,
    )


async def test_hard_prompts_go_to_stronger_models_than_easy_ones(
    registry: ProviderRegistry, redis_client: aioredis.Redis
) -> None:
    routed = stage(registry, redis_client)
    models = {}
    for text in ("an easy question", "a hard question"):
        got = await routed.route(RequestContext(request=request(text, task_type="qa")))
        models[text] = got.model
        assert "best expected value" in got.reason or "predicted" in got.reason
    easy = CATALOG.get(models["an easy question"])
    hard = CATALOG.get(models["a hard question"])
    assert easy.input < hard.input  # the hard prompt pays for a stronger model
    assert hard.quality > easy.quality


async def test_the_controller_moves_the_weight_toward_its_target(
    registry: ProviderRegistry, redis_client: aioredis.Redis
) -> None:
    lenient = ValueController(start=0.1, target=0.5)
    strict = ValueController(start=0.1, target=1.0)
    for controller in (lenient, strict):
        routed = stage(registry, redis_client, controller)
        for i in range(30):
            text = "a hard question" if i % 2 else "an easy question"
            await routed.route(RequestContext(request=request(text, task_type="qa")))
    # Picks keep far more than half the best chance: room to save, the weight grows; a
    # target of all of it can never be beaten, so that weight shrinks.
    assert lenient.weight("qa") > 0.1 > strict.weight("qa")


async def test_discounted_counts_in_redis_forget_old_evidence(redis_client: aioredis.Redis) -> None:
    store = QualityStore(redis_client, discount=0.5)
    good = QualitySignal(model="m", task_type="t", kind=SignalKind.VALIDATOR, good=True)
    bad = QualitySignal(model="m", task_type="t", kind=SignalKind.VALIDATOR, good=False)
    for i in range(4):
        assert await store.record(good, f"g{i}")
    assert not await store.record(good, "g0")  # once per signal id
    counts = (await store.counts())[("m", "t")]
    assert counts.good == 1.875 and counts.bad == 0.0  # 1 + .5 + .25 + .125
    await store.record(bad, "b0")
    counts = (await store.counts())[("m", "t")]
    assert counts.good == 0.9375 and counts.bad == 1.0


async def test_a_session_stays_on_its_model_until_it_stops_serving_it(
    registry: ProviderRegistry, redis_client: aioredis.Redis
) -> None:
    routed = stage(registry, redis_client, pins=SessionPins(redis_client))

    async def ask(text: str, session: str | None, floor: float = 0.0) -> str:
        tags = {"session": session} if session else {}
        req = request(text, task_type="qa", tags=tags, quality_floor=floor)
        got = await routed.route(RequestContext(request=req))
        return f"{got.model}|{got.reason}"

    first = await ask("an easy question", "s1")
    easy_model = first.split("|")[0]
    alone = (await ask("a hard question", None)).split("|")[0]
    assert alone != easy_model  # without a session, the hard prompt goes elsewhere
    pinned = await ask("a hard question", "s1")
    assert pinned.startswith(f"{easy_model}|pinned to session")
    assert (await ask("a hard question", "s2")).split("|")[0] == alone  # another session
    # A floor the pinned model no longer reaches: re-pinned to the policy's pick.
    moved = await ask("a hard question", "s1", floor=0.8)
    assert not moved.startswith(easy_model) and "pinned" not in moved
    again = await ask("a hard question", "s1")
    assert "pinned to session" in again and again.split("|")[0] == moved.split("|")[0]
