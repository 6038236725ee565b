"""The fine-tuning pipeline: the best answers of a task type (valid at the first attempt) as
OpenAI chat fine-tuning JSONL with a held-out evaluation set; upload, create the job, poll it
with the openai client; register the model at its fine-tuned prices; start it as an
experiment arm against the current model.

The examples come from the streams: quality signals (WORKFLOW) say which answers passed,
LLM_REQUESTS holds what was asked (one day), LLM_RESULTS what was answered.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import nats.errors
import openai
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from bus import subjects
from bus.codec import decode
from bus.errors import WireError
from bus.messages import LlmRequest, LlmResult, QualitySignal
from optimizer.errors import FineTuneError
from optimizer.experiments import Arm, Experiment, Metric
from router.providers.messages import openai_messages

BATCH = 256
MIN_EXAMPLES = 10
"""OpenAI refuses a training file with fewer examples."""
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class Dataset:
    """Chat fine-tuning examples of one task type, split into training and evaluation."""

    task_type: str
    train: list[dict[str, Any]] = field(default_factory=list)
    eval: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    """Good answers whose request or result is no longer in the streams."""

    @staticmethod
    def jsonl(examples: list[dict[str, Any]]) -> bytes:
        """Examples as JSONL, one {"messages": [...]} per line."""
        return "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples).encode()


@dataclass(frozen=True, kw_only=True)
class FineTuneOutcome:
    """A finished job: its id, status and model (when it succeeded)."""

    job_id: str
    status: str
    model: str | None
    training_file: str
    validation_file: str | None
    seconds: float
    error: str = ""


def good_answer(signal: QualitySignal, task_type: str, tenant: str | None) -> bool:
    """A first-attempt answer that passed every check, of the task type (and tenant)."""
    return (
        signal.valid
        and signal.attempt == 0
        and not signal.escalated
        and not signal.problems
        and signal.task_type == task_type
        and (tenant is None or signal.tenant == tenant)
    )


def held_out(request_id: str, eval_percent: int) -> bool:
    """Whether an example goes to the evaluation set: a stable hash of its request id."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % 100 < eval_percent


async def collect(
    js: JetStreamContext,
    task_type: str,
    *,
    tenant: str | None = None,
    eval_percent: int = 10,
    limit: int = 5_000,
) -> Dataset:
    """The good answers of a task type in the streams, as a training and an evaluation set."""
    good: set[str] = set()
    async for msg in _replay(js, subjects.STREAM_WORKFLOW, subjects.QUALITY_ALL):
        try:
            signal = decode(msg.data, QualitySignal)
        except WireError:
            continue
        if good_answer(signal, task_type, tenant) and len(good) < limit:
            good.add(signal.request_id)
    dataset = Dataset(task_type=task_type)
    found: set[str] = set()
    async for msg in _replay(js, subjects.STREAM_REQUESTS, subjects.REQUESTS_ALL):
        try:
            request = decode(msg.data, LlmRequest)
        except WireError:
            continue
        if request.id not in good or request.id in found:
            continue
        found.add(request.id)
        answer = await _answer(js, request)
        if answer is None:
            dataset.skipped += 1
            continue
        example = {"messages": [*openai_messages(request.messages), answer]}
        (dataset.eval if held_out(request.id, eval_percent) else dataset.train).append(example)
    dataset.skipped += len(good - found)
    if eval_percent > 0 and not dataset.eval and len(dataset.train) >= 2:
        # The hash can hold out nothing from a small set; an evaluation set is never left
        # empty when one example can be spared (the last one, so the choice is stable).
        dataset.eval.append(dataset.train.pop())
    return dataset


async def _answer(js: JetStreamContext, request: LlmRequest) -> dict[str, Any] | None:
    """The assistant turn of a request's stored result, if it is there and ok."""
    subject = subjects.llm_result(request.tenant, request.agent, request.id)
    try:
        raw = await js.get_last_msg(subjects.STREAM_RESULTS, subject, direct=True)
        result = decode(raw.data or b"", LlmResult)
    except (NotFoundError, WireError):
        return None
    if not result.ok or not result.content:
        return None
    return {"role": "assistant", "content": result.content}


async def _replay(js: JetStreamContext, stream: str, subject: str) -> AsyncIterator[Msg]:
    """Every message of a stream on subject, from the first, without acks."""
    info = await js.stream_info(stream)
    if not info.state.messages:
        return
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=60.0,
        max_waiting=1,
    )
    sub = await js.pull_subscribe(subject, stream=stream, config=config)
    try:
        while True:
            try:
                batch = await sub.fetch(BATCH, timeout=1.0)
            except nats.errors.TimeoutError:
                return
            for msg in batch:
                yield msg
            if batch[-1].metadata.num_pending == 0:
                return
    finally:
        await sub.unsubscribe()


async def fine_tune(
    client: openai.AsyncOpenAI,
    dataset: Dataset,
    *,
    base_model: str,
    suffix: str = "",
    poll_s: float = 30.0,
    timeout_s: float = 24 * 3600,
) -> FineTuneOutcome:
    """Upload the dataset, create the job and poll it until it ends; raises FineTuneError."""
    if len(dataset.train) < MIN_EXAMPLES:
        raise FineTuneError(
            f"{len(dataset.train)} training examples of {dataset.task_type}; "
            f"fine-tuning needs at least {MIN_EXAMPLES}"
        )
    started = time.monotonic()
    try:
        train = await client.files.create(
            file=(f"{dataset.task_type}-train.jsonl", Dataset.jsonl(dataset.train)),
            purpose="fine-tune",
        )
        validation = None
        if dataset.eval:
            validation = await client.files.create(
                file=(f"{dataset.task_type}-eval.jsonl", Dataset.jsonl(dataset.eval)),
                purpose="fine-tune",
            )
        job = await client.fine_tuning.jobs.create(
            model=base_model,
            training_file=train.id,
            validation_file=validation.id if validation else None,
            suffix=(suffix or dataset.task_type.replace("_", "-"))[:18],
        )
        while job.status not in TERMINAL:
            if time.monotonic() - started > timeout_s:
                raise FineTuneError(f"job {job.id} still {job.status} after {timeout_s:.0f}s")
            await asyncio.sleep(poll_s)
            job = await client.fine_tuning.jobs.retrieve(job.id)
    except openai.APIError as exc:
        raise FineTuneError(f"the provider refused the fine-tuning run: {exc}") from exc
    error = job.error.message if job.error is not None and job.error.message else ""
    outcome = FineTuneOutcome(
        job_id=job.id,
        status=job.status,
        model=job.fine_tuned_model,
        training_file=train.id,
        validation_file=validation.id if validation else None,
        seconds=time.monotonic() - started,
        error=error,
    )
    if job.status != "succeeded" or not job.fine_tuned_model:
        raise FineTuneError(f"fine-tuning job {job.id} {job.status}: {error or 'no model'}")
    return outcome


def fine_tune_experiment(
    name: str,
    *,
    current_model: str,
    tuned_model: str,
    task_type: str,
    tenant: str = "",
    percent: float = 10.0,
    min_samples: int = 200,
    quality_floor: float = 0.9,
) -> Experiment:
    """The tuned model on percent of a task type's traffic, against the current model."""
    return Experiment(
        name=name,
        tenant=tenant,
        task_type=task_type,
        metric=Metric.COST_PER_VALID,
        min_samples=min_samples,
        quality_floor=quality_floor,
        arms=[
            Arm(name="current", percent=100 - percent, model=current_model),
            Arm(name="tuned", percent=percent, model=tuned_model, note="fine-tuned"),
        ],
    )
