"""The workflow service: starts each upload's DAG and runs every agent once its inputs exist."""

from __future__ import annotations

import logging

from faststream.nats import NatsBroker, NatsRouter

from agents.checkpoints import CheckpointStore
from agents.dag import WorkflowDag
from agents.spec import UPLOAD
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
)
from bus.settings import Settings

log = logging.getLogger(__name__)
MSG_ID = "Nats-Msg-Id"


class WorkflowService:
    """Turns uploads and agent-done events into run commands, progress and a final event.

    It keeps no state of its own: each event re-reads the workflow's checkpoints, so any
    replica can take any event, and a restarted one resumes where the checkpoints stand.
    """

    def __init__(self, dag: WorkflowDag, settings: Settings, broker: NatsBroker) -> None:
        self.dag = dag
        self._settings = settings
        self._broker = broker

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
        broker, js = self._broker, self._broker.connection.jetstream()
        try:
            upload = decode(message(incoming).body, ProductUploaded)
        except WireError as exc:
            log.warning("dropping an unreadable upload: %s", exc.reason)
            return
        store = CheckpointStore(await js.key_value(subjects.BUCKET_CHECKPOINTS))
        await store.put_upload(upload)
        await self._advance(broker, store, upload, finished_now=UPLOAD)

    async def on_agent_done(self, incoming: Incoming) -> None:
        """Run what the finished agent unblocked; end the workflow when nothing is left."""
        broker, js = self._broker, self._broker.connection.jetstream()
        try:
            done = decode(message(incoming).body, AgentDone)
        except WireError as exc:
            log.warning("dropping an unreadable agent-done event: %s", exc.reason)
            return
        store = CheckpointStore(await js.key_value(subjects.BUCKET_CHECKPOINTS))
        upload = await store.upload(done.workflow_id)
        if upload is None:
            log.warning("agent-done for unknown workflow %s", done.workflow_id)
            return
        await self._advance(broker, store, upload, finished_now=done.agent)

    async def _advance(
        self, broker: NatsBroker, store: CheckpointStore, upload: ProductUploaded, finished_now: str
    ) -> None:
        wf, tenant = upload.workflow_id, upload.tenant
        checkpoints = await store.finished(wf)
        ok = {name for name, c in checkpoints.items() if c.ok}
        failed = {name for name, c in checkpoints.items() if not c.ok}
        blocked = self.dag.blocked_by(failed)
        lost = sorted(n for n in failed | blocked if self.dag.specs[n].required)
        if lost:
            reasons = "; ".join(f"{n}: {checkpoints[n].reason}" for n in lost if n in checkpoints)
            await self._finish(broker, upload, checkpoints, ok=False, reason=reasons or str(lost))
            return
        for name in self.dag.ready(finished=ok, started=failed | blocked):
            if finished_now in self.dag.specs[name].consumes:
                await broker.publish(
                    encode(RunAgent(workflow_id=wf, tenant=tenant, agent=name)),
                    subjects.agent_run(name, tenant),
                    headers={MSG_ID: f"{wf}.{name}.run"},
                    stream=subjects.STREAM_WORKFLOW,
                )
        progress = WorkflowProgress(
            workflow_id=wf,
            tenant=tenant,
            product_id=upload.product_id,
            done=len(checkpoints),
            total=len(self.dag.specs),
            last_agent=finished_now,
        )
        await broker.publish(encode(progress), subjects.workflow_progress(tenant, wf))
        if len(checkpoints) + len(blocked) == len(self.dag.specs):
            await self._finish(broker, upload, checkpoints, ok=True, reason="")

    async def _finish(
        self,
        broker: NatsBroker,
        upload: ProductUploaded,
        checkpoints: dict[str, AgentCheckpoint],
        *,
        ok: bool,
        reason: str,
    ) -> None:
        missing = sorted(set(self.dag.specs) - {n for n, c in checkpoints.items() if c.ok})
        listing: dict[str, object] = {}
        for name, checkpoint in checkpoints.items():
            if checkpoint.ok:
                listing[self.dag.specs[name].listing_key or name] = checkpoint.output
        done = WorkflowDone(
            workflow_id=upload.workflow_id,
            tenant=upload.tenant,
            product_id=upload.product_id,
            ok=ok,
            reason=reason,
            listing=listing,
            missing=missing if ok else [],
            cost_micro_usd=sum(c.cost_micro_usd for c in checkpoints.values()),
            baseline_micro_usd=sum(c.baseline_micro_usd for c in checkpoints.values()),
        )
        await broker.publish(
            encode(done),
            subjects.workflow_done(upload.tenant, upload.workflow_id),
            headers={MSG_ID: f"{upload.workflow_id}.done"},
            stream=subjects.STREAM_WORKFLOW,
        )
