"""The workflow service: starts each upload's DAG and runs every agent once its inputs exist.

It keeps no state in memory. Each workflow's progress is one small value in the checkpoint
bucket (which agents succeeded or failed), changed by compare-and-set on each agent-done
event; the event's handler then starts exactly the agents that change made ready
(agents.progress). So an event costs a read and a write of that value, not a scan of the
workflow's checkpoints (one per agent of WORKFLOW_SPECS); those are read once, when the
workflow ends, to assemble its listing package. Any replica can take any event, and a
restarted one resumes from the stored state: a redelivered event re-announces whatever its
first delivery may not have.

A workflow that succeeds has its call-free work booked in the ledger as it ends (zero-call
agents' outputs, reused photo analyses: agents.attribution), before its final event; one
that fails books none of it, so a failed product claims no saving for it. Its paid calls
are booked by the router whatever happens.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import msgspec
from faststream.nats import NatsBroker, NatsRouter

from agents.attribution import Attribution, call_free_lever
from agents.dag import WorkflowDag
from agents.package import build_package, package_checkpoint
from agents.progress import Finish, record, roots
from agents.spec import UPLOAD
from agents.stores import StoreOpener, Stores
from bus import subjects
from bus.codec import decode, encode
from bus.consumers import Incoming, durable_consumer, message
from bus.errors import WireError
from bus.messages import (
    AgentCheckpoint,
    AgentDone,
    ProductUploaded,
    RunAgent,
    WorkflowDone,
    WorkflowProgress,
    WorkflowState,
)
from bus.publishing import publish
from bus.settings import Settings
from cost_ledger.catalog import PriceCatalog

log = logging.getLogger(__name__)


class WorkflowService:
    """Turns uploads and agent-done events into run commands, progress and a final event."""

    def __init__(
        self,
        dag: WorkflowDag,
        settings: Settings,
        broker: NatsBroker,
        *,
        catalog: PriceCatalog | None = None,
    ) -> None:
        self.dag = dag
        self._settings = settings
        self._broker = broker
        self._stores = StoreOpener(settings)
        self._attribution = Attribution(
            broker,
            catalog or PriceCatalog.load(),
            settings.baseline_model,
            max_request_bytes=settings.max_request_bytes,
        )

    def router(self) -> NatsRouter:
        """Durable consumers of uploads and of agent-done events."""
        router = NatsRouter()
        for handler, subject, durable in (
            (self.on_upload, subjects.UPLOADS_ALL, "workflow-uploads"),
            (self.on_agent_done, subjects.AGENT_DONE_ALL, "workflow-done"),
        ):
            durable_consumer(
                router,
                handler,
                subject=subject,
                stream=subjects.STREAM_WORKFLOW,
                durable=durable,
                settings=self._settings,
                workers=32,
            )
        return router

    async def on_upload(self, incoming: Incoming) -> None:
        """Keep the upload and start the agents that need nothing but it."""
        try:
            upload = decode(message(incoming).body, ProductUploaded)
            subjects.checkpoint_key(upload.tenant, upload.workflow_id, UPLOAD)
        except (WireError, ValueError) as exc:
            log.warning("dropping an unreadable upload: %s", exc)
            return
        stores = await self._stores(self._broker.connection.jetstream())
        await stores.checkpoints.put_upload(upload)

        def start(state: WorkflowState) -> WorkflowState:
            return msgspec.structs.replace(state, product_id=upload.product_id)

        _, state = await stores.checkpoints.update_state(upload.tenant, upload.workflow_id, start)
        if state.cancelled:  # interrupted before its first agent: nothing starts
            return
        await asyncio.gather(
            *(self._run(upload.tenant, upload.workflow_id, name) for name in roots(self.dag))
        )

    async def on_agent_done(self, incoming: Incoming) -> None:
        """Record the agent; run what it unblocked; end the workflow when nothing is left."""
        try:
            done = decode(message(incoming).body, AgentDone)
        except WireError as exc:
            log.warning("dropping an unreadable agent-done event: %s", exc.reason)
            return
        if done.agent not in self.dag.specs:
            log.warning("agent-done of unknown agent %r", done.agent)
            return
        stores = await self._stores(self._broker.connection.jetstream())
        step = None

        def change(state: WorkflowState) -> WorkflowState:
            nonlocal step
            step = record(self.dag, state, done.agent, done.ok)
            return step.state

        await stores.checkpoints.update_state(done.tenant, done.workflow_id, change)
        assert step is not None
        await asyncio.gather(*(self._run(done.tenant, done.workflow_id, n) for n in step.run))
        if not step.replay:
            progress = WorkflowProgress(
                workflow_id=done.workflow_id,
                tenant=done.tenant,
                product_id=step.state.product_id,
                done=len(step.state.ok) + len(step.state.failed),
                total=len(self.dag.specs),
                last_agent=done.agent,
            )
            # Core NATS, straight on the connection: progress is for watchers, not kept.
            await self._broker.connection.publish(
                subjects.workflow_progress(done.tenant, done.workflow_id), encode(progress)
            )
        if step.finish is not Finish.NONE:
            upload = await stores.checkpoints.upload(done.tenant, done.workflow_id)
            if upload is not None:
                await self._finish(stores, upload, step.finish, step.lost)

    async def _run(self, tenant: str, workflow_id: str, agent: str) -> None:
        await publish(
            self._broker,
            encode(RunAgent(workflow_id=workflow_id, tenant=tenant, agent=agent)),
            subjects.agent_run(agent, tenant),
            stream=subjects.STREAM_WORKFLOW,
            msg_id=f"{workflow_id}.{agent}.run",
        )

    async def _finish(
        self, stores: Stores, upload: ProductUploaded, finish: Finish, lost: tuple[str, ...]
    ) -> None:
        """Assemble the package from every checkpoint (read once) and announce the end."""
        tenant, wf = upload.tenant, upload.workflow_id
        checkpoints = await stores.checkpoints.finished(tenant, wf, self.dag.specs)
        ok = finish is Finish.OK
        reason = ""
        if not ok:
            reason = "; ".join(
                f"{name}: {checkpoints[name].reason if name in checkpoints else 'not run'}"
                for name in lost
                if name in checkpoints
            ) or ("required agents lost: " + ", ".join(lost))
        package = build_package(self.dag, upload, checkpoints)
        missing = sorted(name for name in self.dag.specs if name not in package.agents_ok)
        baseline = package.baseline_micro_usd
        if ok:  # delivered: its call-free work saved a naive call each
            await self._book_call_free(upload, checkpoints.values())
        else:
            baseline -= package.call_free_baseline_micro_usd
        done = WorkflowDone(
            workflow_id=wf,
            tenant=tenant,
            product_id=upload.product_id,
            ok=ok,
            reason=reason,
            listing=package.listing if ok else {},
            missing=missing if ok else [],
            cost_micro_usd=package.cost_micro_usd,
            baseline_micro_usd=baseline,
            served_by=package.served_by if ok else {},
            simulated=package.simulated,
        )
        if ok:
            await stores.checkpoints.put_package(tenant, wf, package_checkpoint(package, upload))
        await publish(
            self._broker,
            encode(done),
            subjects.workflow_done(tenant, wf),
            stream=subjects.STREAM_WORKFLOW,
            msg_id=f"{wf}.done",
        )

    async def _book_call_free(
        self, upload: ProductUploaded, checkpoints: Iterable[AgentCheckpoint]
    ) -> None:
        """Book each agent's call-free work (one event each, its id stable across replays)."""
        await asyncio.gather(
            *(
                self._attribution.book(
                    tenant=upload.tenant,
                    agent=c.agent,
                    workflow_id=upload.workflow_id,
                    task_type=str(self.dag.specs[c.agent].task_type),
                    lever=call_free_lever(self.dag.specs[c.agent]),
                    baseline_micro_usd=c.call_free_baseline_micro_usd,
                )
                for c in checkpoints
                if c.ok and c.call_free_baseline_micro_usd > 0 and c.agent in self.dag.specs
            )
        )
