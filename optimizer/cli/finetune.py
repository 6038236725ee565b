"""`flipsync finetune <task type>`: fine-tune a model and put it on trial as an arm."""

from __future__ import annotations

import argparse

import openai

from bus.messages import FlagChange
from bus.settings import Settings
from cost_ledger.catalog import PriceCatalog
from optimizer.cli.common import Conn
from optimizer.errors import OptimizerError
from optimizer.pipeline import run_pipeline


async def run(args: argparse.Namespace, settings: Settings, conn: Conn) -> FlagChange | None:
    """Run the fine-tuning pipeline; the change that starts the model's experiment."""
    base_url = settings.openai_base_url if settings.real_provider else settings.sim_base_url
    if base_url is None and not settings.real_provider:
        raise OptimizerError("set OPENAI_API_KEY, or FLIPSYNC_SIM_BASE_URL for the simulator")
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "simulated"
    async with openai.AsyncOpenAI(base_url=base_url, api_key=key) as client:
        run = await run_pipeline(
            js=conn.nc.jetstream(),
            redis=conn.redis,
            client=client,
            catalog=PriceCatalog.load(),
            task_type=args.task_type,
            base_model=args.base,
            tenant=args.tenant,
            percent=args.percent,
            min_samples=args.min_samples,
            quality_floor=args.quality_floor,
            poll_s=args.poll,
        )
    print(
        f"{len(run.dataset.train)} training and {len(run.dataset.eval)} evaluation examples; "
        f"job {run.outcome.job_id} made {run.outcome.model} in {run.outcome.seconds:.0f}s; "
        f"priced at ${run.price.input}/${run.price.output} per 1M tokens; "
        f"experiment {run.experiment.name} started"
    )
    return run.change
