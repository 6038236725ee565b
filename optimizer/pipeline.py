"""The fine-tuning loop in one call: collect, fine-tune, register the model, start the
experiment of the tuned model against the current one."""

from __future__ import annotations

from dataclasses import dataclass

import openai
import redis.asyncio as aioredis
from nats.js import JetStreamContext

from bus.messages import FlagChange
from cost_ledger.catalog import ModelPrice, PriceCatalog
from optimizer import models
from optimizer.experiments import Experiment, ExperimentStore
from optimizer.finetune import (
    Dataset,
    FineTuneOutcome,
    collect,
    fine_tune,
    fine_tune_experiment,
)
from router.providers.registry import ProviderRegistry


@dataclass(frozen=True, kw_only=True)
class PipelineRun:
    """What one run of the loop produced."""

    dataset: Dataset
    outcome: FineTuneOutcome
    price: ModelPrice
    experiment: Experiment
    change: FlagChange
    """The flag change that starts the experiment: publish it on flags.control."""


async def run_pipeline(
    *,
    js: JetStreamContext,
    redis: aioredis.Redis,
    client: openai.AsyncOpenAI,
    catalog: PriceCatalog,
    task_type: str,
    base_model: str,
    registry: ProviderRegistry | None = None,
    tenant: str = "",
    percent: float = 10.0,
    min_samples: int = 200,
    quality_floor: float = 0.9,
    poll_s: float = 30.0,
    timeout_s: float = 24 * 3600,
) -> PipelineRun:
    """Fine-tune base_model on a task type's best answers and put the result on trial."""
    catalog.get(base_model)  # an unknown base model fails before anything is uploaded
    dataset = await collect(js, task_type, tenant=tenant or None)
    outcome = await fine_tune(
        client, dataset, base_model=base_model, poll_s=poll_s, timeout_s=timeout_s
    )
    assert outcome.model is not None  # fine_tune raises unless the job made a model
    registration = models.registration_for(outcome.model, base_model, outcome.job_id)
    await models.save(redis, registration)
    price = models.register(catalog, registration, registry)
    experiment = fine_tune_experiment(
        f"ft-{task_type.replace('_', '-')}-{outcome.job_id[-6:]}",
        current_model=base_model,
        tuned_model=outcome.model,
        task_type=task_type,
        tenant=tenant,
        percent=percent,
        min_samples=min_samples,
        quality_floor=quality_floor,
    )
    change = await ExperimentStore(redis).start(experiment)
    return PipelineRun(
        dataset=dataset, outcome=outcome, price=price, experiment=experiment, change=change
    )
