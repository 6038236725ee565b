"""The one generic agent runtime: every agent is this code driven by its spec."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from faststream.nats import NatsBroker, NatsRouter
from nats.js import JetStreamContext
from opentelemetry import trace

from agents.checkpoints import CheckpointStore
from agents.prompting import build_messages
from agents.spec import UPLOAD, AgentSpec, Inputs
from bus import subjects
from bus.codec import decode, encode
from bus.consumers import Incoming, durable_consumer, message
from bus.errors import WireError
from bus.llm_client import LlmClient
from bus.messages import (
    AgentCheckpoint,
    AgentDone,
    LlmRequest,
    OutputSchema,
    Photo,
    ProductUploaded,
    RunAgent,
)
from bus.settings import Settings

log = logging.getLogger(__name__)
MSG_ID = "Nats-Msg-Id"


class AgentRuntime:
    """Runs agents on RunAgent commands: inputs from checkpoints, output to a checkpoint."""

    def __init__(
        self,
        specs: Iterable[AgentSpec],
        *,
        settings: Settings,
        broker: NatsBroker,
        llm_timeout_s: float = 120.0,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.specs = {spec.name: spec for spec in specs}
        self._settings = settings
        self._broker = broker
        self._llm = LlmClient(broker)
        self._llm_timeout_s = llm_timeout_s
        self._tracer = tracer or trace.get_tracer("flipsync.agents")

    def router(self, workers_per_agent: int = 16) -> NatsRouter:
        """One durable consumer per agent, shared by every replica of the agents service."""
        router = NatsRouter()
        for name in self.specs:
            durable_consumer(
                router,
                self.on_run,
                subject=subjects.agent_run_all(name),
                stream=subjects.STREAM_WORKFLOW,
                durable=f"agent-{name}",
                settings=self._settings,
                workers=workers_per_agent,
            )
        return router

    async def on_run(self, incoming: Incoming) -> None:
        """Run one agent for one workflow, unless its checkpoint says it already ran."""
        broker = self._broker
        js = broker.connection.jetstream()
        try:
            command = decode(message(incoming).body, RunAgent)
        except WireError as exc:
            log.warning("dropping an unreadable run command: %s", exc.reason)
            return
        spec = self.specs.get(command.agent)
        if spec is None:
            log.warning("no agent %r in this runtime", command.agent)
            return
        store = CheckpointStore(await js.key_value(subjects.BUCKET_CHECKPOINTS))
        checkpoint = await store.get(command.workflow_id, spec.name)
        if checkpoint is None:  # a finished agent is never paid for twice
            with self._tracer.start_as_current_span(f"agent {spec.name}") as span:
                span.set_attribute("flipsync.agent", spec.name)
                span.set_attribute("flipsync.tenant", command.tenant)
                span.set_attribute("flipsync.workflow_id", command.workflow_id)
                checkpoint = await self.work(spec, command, store, js, self._llm)
                span.set_attribute("flipsync.cost_micro_usd", checkpoint.cost_micro_usd)
            await store.put(checkpoint)
        done = AgentDone(
            workflow_id=command.workflow_id,
            tenant=command.tenant,
            agent=spec.name,
            ok=checkpoint.ok,
            reason=checkpoint.reason,
            cost_micro_usd=checkpoint.cost_micro_usd,
            baseline_micro_usd=checkpoint.baseline_micro_usd,
        )
        await broker.publish(
            encode(done),
            subjects.agent_done(command.tenant, command.workflow_id, spec.name),
            headers={MSG_ID: f"{command.workflow_id}.{spec.name}.done"},
            stream=subjects.STREAM_WORKFLOW,
        )

    async def work(
        self,
        spec: AgentSpec,
        command: RunAgent,
        store: CheckpointStore,
        js: JetStreamContext,
        llm: LlmClient,
    ) -> AgentCheckpoint:
        """The agent's output (or its failure with a reason) as a checkpoint."""
        wf = command.workflow_id
        upload = await store.upload(wf)
        if upload is None:
            return _failed(wf, spec.name, "the workflow's upload is not in the checkpoint store")
        inputs: dict[str, dict[str, Any]] = {UPLOAD: upload_view(upload)}
        for dep in spec.consumes:
            if dep == UPLOAD:
                continue
            dep_checkpoint = await store.get(wf, dep)
            if dep_checkpoint is None or not dep_checkpoint.ok:
                return _failed(wf, spec.name, f"input {dep!r} is missing")
            inputs[dep] = dep_checkpoint.output
        if spec.compute is not None:
            output = spec.compute(inputs)
            problems = [p for check in spec.validators for p in check(output, inputs)]
            if problems:
                return _failed(wf, spec.name, "; ".join(problems))
            return AgentCheckpoint(workflow_id=wf, agent=spec.name, ok=True, output=output)
        images = await _photos(js, upload.photos) if spec.uses_images else []
        return await self._ask(spec, command, upload, inputs, images, llm)

    async def _ask(
        self,
        spec: AgentSpec,
        command: RunAgent,
        upload: ProductUploaded,
        inputs: Inputs,
        images: list[tuple[Photo, bytes]],
        llm: LlmClient,
    ) -> AgentCheckpoint:
        """Ask the model; an invalid answer gets one targeted retry naming its problems."""
        wf = command.workflow_id
        checkpoint = AgentCheckpoint(workflow_id=wf, agent=spec.name, ok=False)
        problems: list[str] = []
        for attempt in range(2):
            request = LlmRequest(
                id=f"{wf}-{spec.name}-{command.attempt}-{attempt}",
                tenant=command.tenant,
                agent=spec.name,
                workflow_id=wf,
                task_type=spec.task_type,
                messages=build_messages(spec, inputs, images, fix=problems or None),
                output_schema=OutputSchema(name=spec.name, schema=dict(spec.output_schema or {})),
                max_output_tokens=spec.max_output_tokens,
                priority=upload.priority,
            )
            result = await llm.request(request, self._llm_timeout_s)
            checkpoint.request_ids.append(request.id)
            checkpoint.cost_micro_usd += result.cost_micro_usd
            checkpoint.baseline_micro_usd += result.baseline_micro_usd
            checkpoint.llm_calls += 1 if result.cost_micro_usd > 0 else 0
            if not result.ok:
                checkpoint.reason = f"{result.error_code}: {result.reason}"
                return checkpoint
            output = result.parsed if isinstance(result.parsed, dict) else {}
            problems = [p for check in spec.validators for p in check(output, inputs)]
            if not problems:
                checkpoint.ok, checkpoint.output, checkpoint.reason = True, output, ""
                return checkpoint
            checkpoint.reason = "; ".join(problems)
        return checkpoint


def upload_view(upload: ProductUploaded) -> dict[str, Any]:
    """What agents see of an upload."""
    return {
        "product_id": upload.product_id,
        "title_hint": upload.title_hint,
        "notes": upload.notes,
        "cost_price": upload.cost_price,
        "photos": len(upload.photos),
    }


def _failed(workflow_id: str, agent: str, reason: str) -> AgentCheckpoint:
    return AgentCheckpoint(workflow_id=workflow_id, agent=agent, ok=False, reason=reason)


async def _photos(js: JetStreamContext, photos: list[Photo]) -> list[tuple[Photo, bytes]]:
    store = await js.object_store(subjects.OBJECT_STORE_PHOTOS)
    out: list[tuple[Photo, bytes]] = []
    for photo in photos:
        result = await store.get(photo.object_name)
        if result.data:
            out.append((photo, result.data))
    return out
