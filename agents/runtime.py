"""The one generic agent runtime: every agent is this code driven by its spec."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from faststream.nats import NatsBroker, NatsRouter
from opentelemetry import trace

from agents.asking import Ask, Asked, Asker
from agents.attribution import Attribution
from agents.checkpoints import CheckpointStore
from agents.per_photo import PhotoAnalyst, PhotoJob
from agents.prompting import build_messages, naive_call
from agents.spec import UPLOAD, AgentSpec, Inputs, Output
from agents.stores import StoreOpener, Stores
from bus import subjects
from bus.codec import decode, encode
from bus.consumers import Incoming, delivery_count, durable_consumer, message, working
from bus.errors import WireError
from bus.messages import (
    AgentCheckpoint,
    AgentDone,
    ChatMessage,
    Lever,
    Priority,
    ProductUploaded,
    RunAgent,
)
from bus.publishing import publish
from bus.settings import Settings
from bus.stopping import Stopped, Stopping
from cost_ledger.catalog import PriceCatalog

log = logging.getLogger(__name__)


class AgentRuntime:
    """Runs agents on RunAgent commands: inputs from checkpoints, output to a checkpoint."""

    def __init__(
        self,
        specs: Iterable[AgentSpec],
        *,
        settings: Settings,
        broker: NatsBroker,
        catalog: PriceCatalog | None = None,
        llm_timeout_s: float = 120.0,
        tracer: trace.Tracer | None = None,
        stopping: Stopping | None = None,
    ) -> None:
        self._stopping = stopping or Stopping()
        self.specs = {spec.name: spec for spec in specs if not spec.interactive}
        self._settings = settings
        self._broker = broker
        self._stores = StoreOpener(settings)
        self._asker = Asker(broker, settings, timeout_s=llm_timeout_s)
        self._photos = PhotoAnalyst(self._asker, wait_s=2 * settings.photo_claim_s)
        self._attribution = Attribution(
            broker,
            catalog or PriceCatalog.load(),
            settings.baseline_model,
            max_request_bytes=settings.max_request_bytes,
        )
        self._tracer = tracer or trace.get_tracer("flipsync.agents")

    def router(self) -> NatsRouter:
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
                workers=self._settings.agent_workers,
            )
        return router

    async def on_run(self, incoming: Incoming) -> None:
        """Run one agent for one workflow, unless its checkpoint says it already ran."""
        try:
            command = decode(message(incoming).body, RunAgent)
        except WireError as exc:
            log.warning("dropping an unreadable run command: %s", exc.reason)
            return
        spec = self.specs.get(command.agent)
        if spec is None:
            log.warning("no agent %r in this runtime", command.agent)
            return
        try:
            # A stop abandons the agent (its message handed back), not the stop waits for it.
            await self._stopping.guard(self._run(spec, command, incoming))
        except Stopped:
            raise
        except Exception as exc:
            delivery = delivery_count(incoming)
            if delivery < self._settings.max_deliver:
                raise  # redelivered after a growing delay (bus.consumers)
            # The last delivery: the agent fails with the reason, so its workflow still ends.
            reason = f"gave up after {delivery} deliveries: {type(exc).__name__}: {exc}"
            log.error("agent %s of workflow %s: %s", spec.name, command.workflow_id, reason)
            store = (await self._stores(self._broker.connection.jetstream())).checkpoints
            kept = await store.get(command.tenant, command.workflow_id, spec.name)
            failed = AgentCheckpoint(
                workflow_id=command.workflow_id,
                tenant=command.tenant,
                agent=spec.name,
                ok=False,
                reason=reason,
            )
            await self._settle(spec, command, kept or failed)

    async def _run(self, spec: AgentSpec, command: RunAgent, incoming: Incoming) -> None:
        """Run the agent (unless a checkpoint says it already ran) and announce it done."""
        stores = await self._stores(self._broker.connection.jetstream())
        store = stores.checkpoints
        checkpoint = await store.get(command.tenant, command.workflow_id, spec.name)
        if checkpoint is None and await _cancelled(store, command):
            return  # its upload was interrupted (agents.cancel): no call, no event
        if checkpoint is None:  # a finished agent is never paid for twice
            with self._tracer.start_as_current_span(f"agent {spec.name}") as span:
                span.set_attribute("flipsync.agent", spec.name)
                span.set_attribute("flipsync.tenant", command.tenant)
                span.set_attribute("flipsync.workflow_id", command.workflow_id)
                async with working(message(incoming), self._settings.ack_wait_s / 3):
                    checkpoint = await self.work(spec, command, stores)
                span.set_attribute("flipsync.cost_micro_usd", checkpoint.cost_micro_usd)
        await self._settle(spec, command, checkpoint)

    async def _settle(
        self, spec: AgentSpec, command: RunAgent, checkpoint: AgentCheckpoint
    ) -> None:
        """Keep the agent's checkpoint and announce it done."""
        store = (await self._stores(self._broker.connection.jetstream())).checkpoints
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
        await publish(
            self._broker,
            encode(done),
            subjects.agent_done(command.tenant, command.workflow_id, spec.name),
            stream=subjects.STREAM_WORKFLOW,
            msg_id=f"{command.workflow_id}.{spec.name}.done",
        )

    async def work(self, spec: AgentSpec, command: RunAgent, stores: Stores) -> AgentCheckpoint:
        """The agent's output (or its failure with a reason) as a checkpoint."""
        tenant, wf = command.tenant, command.workflow_id
        checkpoint = AgentCheckpoint(workflow_id=wf, tenant=tenant, agent=spec.name, ok=False)
        upload = await stores.checkpoints.upload(tenant, wf)
        if upload is None:
            checkpoint.reason = "the workflow's upload is not in the checkpoint store"
            return checkpoint
        inputs: dict[str, Any] = {UPLOAD: upload_view(upload)}
        deps = [dep for dep in spec.inputs if dep != UPLOAD]
        got = await asyncio.gather(*(stores.checkpoints.get(tenant, wf, dep) for dep in deps))
        for dep, found in zip(deps, got, strict=True):
            if found is not None and found.ok:
                inputs[dep] = found.output
            elif dep in spec.consumes:
                checkpoint.reason = f"input {dep!r} is missing"
                return checkpoint
        if spec.compute is not None:
            return await self._compute(spec, inputs, checkpoint)
        priority = Priority.BULK if upload.priority is Priority.BULK else spec.priority
        request_id = f"{wf}-{spec.name}-{command.attempt}"
        if spec.uses_images:
            job = PhotoJob(
                tenant=tenant,
                workflow_id=wf,
                request_id=request_id,
                priority=priority,
                memory=stores.photos,
                objects=stores.objects,
            )
            work = await self._photos.analyse(spec, upload.photos, job)
            _account(checkpoint, work.asked, {"photos": work.analyses})
            if work.asked.ok and work.reused:  # booked by the workflow, if it succeeds
                checkpoint.baseline_micro_usd += work.reused_baseline_micro_usd
                checkpoint.call_free_baseline_micro_usd = work.reused_baseline_micro_usd
                if work.asked.result is None:  # no photo of it was asked about
                    checkpoint.lever = Lever.PHOTO_DEDUP
            return checkpoint
        ask = _ask(spec, inputs, tenant, wf, request_id, priority)
        _account(checkpoint, await self._asker.ask(ask), None)
        return checkpoint

    async def _compute(
        self, spec: AgentSpec, inputs: Inputs, checkpoint: AgentCheckpoint
    ) -> AgentCheckpoint:
        """A zero-call agent: plain code, validated, its naive baseline priced (and booked by
        the workflow, only if the workflow succeeds: agents.workflow)."""
        assert spec.compute is not None
        try:
            output = spec.compute(inputs)
        except (ArithmeticError, KeyError, TypeError, ValueError) as exc:
            checkpoint.reason = f"{type(exc).__name__}: {exc}"
            return checkpoint
        problems = [p for check in spec.validators for p in check(output, inputs)]
        if problems:
            checkpoint.reason = "; ".join(problems)
            return checkpoint
        checkpoint.ok, checkpoint.output = True, output
        checkpoint.lever = Lever.ZERO_CALL
        baseline = self._attribution.baseline(naive_call(spec, inputs, output))
        checkpoint.baseline_micro_usd = checkpoint.call_free_baseline_micro_usd = baseline
        return checkpoint


async def _cancelled(store: CheckpointStore, command: RunAgent) -> bool:
    state = await store.state(command.tenant, command.workflow_id)
    return state is not None and state.cancelled


def upload_view(upload: ProductUploaded) -> dict[str, Any]:
    """What agents can see of an upload (each LLM agent is shown only its upload_fields)."""
    return {
        "title_hint": upload.title_hint,
        "notes": upload.notes,
        "cost_price": upload.cost_price,
        "attributes": dict(upload.attributes),
        "photos": len(upload.photos),
    }


def _ask(
    spec: AgentSpec, inputs: Inputs, tenant: str, wf: str, request_id: str, priority: Priority
) -> Ask:
    def messages(problems: list[str], previous: str) -> list[ChatMessage]:
        return build_messages(spec, inputs, fix=problems or None, previous=previous)

    def check(output: Output) -> list[str]:
        return [p for validate in spec.validators for p in validate(output, inputs)]

    return Ask(
        spec=spec,
        tenant=tenant,
        workflow_id=wf,
        request_id=request_id,
        priority=priority,
        messages=messages,
        schema=dict(spec.output_schema or {}),
        check=check,
    )


def _account(checkpoint: AgentCheckpoint, asked: Asked, output: Output | None) -> None:
    checkpoint.ok, checkpoint.reason = asked.ok, asked.reason
    checkpoint.output = (output if output is not None else asked.output) if asked.ok else {}
    checkpoint.request_ids = asked.request_ids
    checkpoint.cost_micro_usd = asked.cost_micro_usd
    checkpoint.baseline_micro_usd = asked.baseline_micro_usd
    checkpoint.llm_calls = asked.paid_calls
    if asked.result is not None:
        checkpoint.lever = asked.result.lever
        checkpoint.simulated = asked.result.simulated
