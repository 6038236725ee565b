"""Cancelling an interrupted upload's workflows, precisely: by tenant and workflow id.

Ctrl-C or --timeout ends `flipsync upload`; the workflows it started and did not see finish
would otherwise resume under the next command on the same data (their messages are durable)
and pay for calls whose listings nobody writes. So each is marked cancelled in its state
(the workflow service starts nothing more for it, agents make no call for it), and its LLM
requests not yet answered are deleted from the requests stream (no router takes them up).
Calls already made stay booked in the ledger. A killed process runs none of this: its
workflows resume, as they should after a crash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import msgspec
from faststream.nats import NatsBroker
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from agents.stores import StoreOpener
from bus import subjects
from bus.codec import decode
from bus.errors import WireError
from bus.messages import LlmRequest, WorkflowState
from bus.settings import Settings

CANCEL_WITHIN_S = 5.0
"""How long an interrupted upload gives the cancelling (a few KV writes, one sweep)."""
SWEEP_BATCH = 256
SWEEP_IDLE_S = 1.0
"""The sweep's fetch size, and how long it waits for a batch (its consumer's idle life)."""


async def requests_mark(broker: NatsBroker) -> int:
    """The requests stream's last sequence now: the sweep after an interrupt starts there."""
    info = await broker.connection.jetstream().stream_info(subjects.STREAM_REQUESTS)
    return info.state.last_seq


async def cancel_workflows(
    broker: NatsBroker,
    settings: Settings,
    tenant: str,
    workflow_ids: Collection[str],
    *,
    since_seq: int = 0,
) -> int:
    """Mark the tenant's workflows cancelled and delete their unanswered requests published
    after since_seq; the number of requests deleted."""
    if not workflow_ids:
        return 0
    js = broker.connection.jetstream()
    stores = await StoreOpener(settings)(js)

    def cancel(state: WorkflowState) -> WorkflowState:
        return msgspec.structs.replace(state, cancelled=True)

    await asyncio.gather(
        *(stores.checkpoints.update_state(tenant, wf, cancel) for wf in workflow_ids),
        stores.photos.release_claims(tenant, workflow_ids),  # waiters elsewhere take over
    )
    return await _delete_requests(broker, tenant, set(workflow_ids), since_seq)


async def _delete_requests(
    broker: NatsBroker, tenant: str, workflow_ids: set[str], since_seq: int
) -> int:
    """Delete the tenant's requests of workflow_ids after since_seq, read in batches by a
    throwaway consumer of this tenant's subjects only, from where the upload began."""
    js = broker.connection.jetstream()
    stream = subjects.STREAM_REQUESTS
    if (await js.stream_info(stream)).state.last_seq <= since_seq:
        return 0
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=since_seq + 1,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=SWEEP_IDLE_S,
    )
    sub = await js.pull_subscribe(
        subjects.tenant_llm_requests(tenant), stream=stream, config=config
    )
    doomed: list[int] = []
    try:
        pending = 1
        while pending:
            try:
                batch = await sub.fetch(SWEEP_BATCH, timeout=SWEEP_IDLE_S)
            except TimeoutError:
                break
            for msg in batch:
                pending = msg.metadata.num_pending or 0
                try:
                    request = decode(msg.data, LlmRequest)
                except WireError:
                    continue
                if request.workflow_id in workflow_ids:
                    doomed.append(msg.metadata.sequence.stream)
    finally:
        await sub.unsubscribe()
    await asyncio.gather(*(js.delete_msg(stream, seq) for seq in doomed))
    return len(doomed)
