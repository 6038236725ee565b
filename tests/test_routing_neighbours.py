"""Nearest recorded outcomes (router.routing.neighbours): a model that fails on one kind of
prompt loses those prompts and keeps the others."""

from __future__ import annotations

import numpy as np
import pytest
import redis.asyncio as aioredis

from bus.settings_sections import RoutingSettings
from router.context import RequestContext
from router.providers.registry import ProviderRegistry
from router.routing.config import RoutingConfig
from router.routing.difficulty import DifficultyModel
from router.routing.neighbours import NeighbourSettings, OutcomeMemory
from router.routing.policy import Policy
from router.routing.predict import PromptPredictor
from router.routing.quality_store import QualityStore, QualityView
from router.stages.route import RouteStage
from tests.test_route_stage import CATALOG, registry, request

__all__ = ["registry"]  # the fixture, imported for these tests


class KindEmbedder:
    """Stand-in embedder: invoices point one way, poems another (unit vectors)."""

    def embed(self, texts: list[str]) -> np.ndarray:
        """One row per text."""
        return np.array([[1.0, 0.0] if "invoice" in t else [0.0, 1.0] for t in texts])


# Every prompt equally difficult: only the recorded outcomes tell the two kinds apart.
FLAT = DifficultyModel(weights=np.zeros(2), bias=0.0, slope=1.0)


def test_a_model_is_moved_toward_its_outcomes_on_similar_prompts_only() -> None:
    memory = OutcomeMemory(NeighbourSettings(k=4, c=4.0))
    for i in range(4):
        memory.remember(f"r{i}", "qa", np.array([1.0, 0.0]))
        assert memory.observe(f"r{i}", "cheap", False)
    assert not memory.observe("routed-elsewhere", "cheap", False)
    assert memory.recorded("qa", "cheap") == 4 and memory.recorded("qa", "dear") == 0
    near = memory.blend("qa", np.array([1.0, 0.0]), {"cheap": 0.9, "dear": 0.9})
    far = memory.blend("qa", np.array([0.0, 1.0]), {"cheap": 0.9, "dear": 0.9})
    assert near["cheap"] == pytest.approx(4 * 0.9 / 8)  # c=4 answers at 0.9, 4 failures
    assert near["dear"] == 0.9  # nothing recorded: the prediction stands
    assert far == {"cheap": 0.9, "dear": 0.9}  # orthogonal prompts weigh nothing
    assert memory.blend("other task", np.array([1.0, 0.0]), {"cheap": 0.9}) == {"cheap": 0.9}


def test_memory_keeps_only_the_last_outcomes_and_pending_requests() -> None:
    memory = OutcomeMemory(NeighbourSettings(k=8, c=1.0, memory=3, pending=2))
    for i in range(5):
        memory.remember(f"r{i}", "qa", np.array([1.0, 0.0]))
    assert not memory.observe("r2", "m", True)  # forgotten: only the last 2 are pending
    for i in range(5):
        memory.remember(f"s{i}", "qa", np.array([1.0, 0.0]))
        assert memory.observe(f"s{i}", "m", True)
    assert memory.recorded("qa", "m") == 3  # the last 3 outcomes


async def test_a_model_failing_on_one_kind_of_prompt_loses_it_and_keeps_the_other(
    registry: ProviderRegistry, redis_client: aioredis.Redis
) -> None:
    routing = RoutingSettings(task_quality_floors={}, value_weight=0.1, explore_share=0.0)
    view = QualityView(
        QualityStore(redis_client), {m.name: m.quality for m in CATALOG.models()}, refresh_s=0.0
    )
    memory = OutcomeMemory()
    stage = RouteStage(
        registry,
        CATALOG,
        config=RoutingConfig.from_settings(routing),
        policy=Policy.CHEAPEST,
        quality=view,
        predictor=PromptPredictor(FLAT, KindEmbedder()),
        neighbours=memory,
    )

    async def ask(text: str) -> tuple[str, str]:
        req = request(text, task_type="neighbours-qa")
        return req.id, (await stage.route(RequestContext(request=req))).model

    _, first = await ask("read this invoice")
    assert (await ask("write a poem"))[1] == first  # one model takes both kinds at first
    for i in range(12):  # its verdicts come back: invoices fail, poems pass
        rid, model = await ask(f"read invoice {i}")
        assert memory.observe(rid, model, False)
        rid, model = await ask(f"write poem {i}")
        assert memory.observe(rid, model, True)
    assert (await ask("read another invoice"))[1] != first
    assert (await ask("write another poem"))[1] == first
    # A request that names its model is remembered too: that model's verdict files it.
    hinted = request("read one more invoice", task_type="neighbours-qa", model_hint=first)
    assert (await stage.route(RequestContext(request=hinted))).model == first
    before = memory.recorded("neighbours-qa", first)
    assert memory.observe(hinted.id, first, False)
    assert memory.recorded("neighbours-qa", first) == before + 1


def test_model_and_task_names_from_messages_cannot_grow_the_memory_past_its_bound() -> None:
    memory = OutcomeMemory(NeighbourSettings(rings=3))
    memory.remember("r", "qa", np.array([1.0, 0.0]))
    kept = [memory.observe("r", f"model-{i}", True) for i in range(100)]
    assert kept == [True] * 3 + [False] * 97
    assert memory.observe("r", "model-0", False, "feedback")  # a kept pair still learns
    memory.remember("s", "other task", np.array([1.0, 0.0]))
    assert not memory.observe("s", "model-0", True)  # a new task type's pair is one more
    assert memory.recorded("qa", "model-0") == 2 and memory.recorded("other task", "model-0") == 0


def test_each_kind_of_verdict_on_a_model_is_filed_once_per_request() -> None:
    memory = OutcomeMemory()
    filed: list[tuple[str, str, float]] = []
    memory.listen(lambda task, model, _vector, outcome: filed.append((task, model, outcome)))
    memory.remember("r", "qa", np.array([1.0, 0.0]))
    assert memory.observe("r", "m", False)
    assert not memory.observe("r", "m", False)  # the same verdict again: a redelivery
    assert memory.observe("r", "m", True, "feedback")  # a person's word is another verdict
    assert memory.observe("r", "other", True)  # the answer of another model (a cascade)
    assert not memory.observe("unknown", "m", True)
    assert memory.add("qa", "m", np.array([0.0, 1.0]), 1.0)  # another replica's: not told
    assert not memory.add("qa", "m", np.array([1.0, 0.0, 0.0]), 1.0)  # other dimensions
    assert filed == [("qa", "m", 0.0), ("qa", "m", 1.0), ("qa", "other", 1.0)]
    assert memory.recorded("qa", "m") == 3
