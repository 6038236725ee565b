"""Workflow checkpoints in the JetStream key-value bucket (they survive any process).

Keys are ``<tenant>.<workflow>.<name>``: the upload, each agent's output, the workflow's
state (which agents settled) and, once it finished, its listing package. Tenant first, so a
tenant's data is one key prefix, and reading it never touches another tenant's keys.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from agents.spec import PACKAGE, RESERVED, STATE, UPLOAD
from bus import subjects
from bus.codec import decode, encode
from bus.messages import AgentCheckpoint, ProductUploaded, UploadCheckpoint, WorkflowState

CACHED = 8192
"""Uploads and agent checkpoints kept in memory: they are written once and never change,
so a replica that read one can serve it again without asking the server."""
FETCH = 256
"""Values fetched at a time when reading many keys."""
KV_OPERATION = "KV-Operation"
"""The header of a delete or purge marker in a key-value stream (a value has none)."""


class CheckpointStore:
    """Reads and writes checkpoints: the upload, each agent's output, state and package."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self._cache: OrderedDict[str, bytes] = OrderedDict()

    async def put_upload(self, upload: ProductUploaded) -> None:
        """Keep the upload a workflow starts from."""
        key = subjects.checkpoint_key(upload.tenant, upload.workflow_id, UPLOAD)
        await self._put_once(key, encode(UploadCheckpoint(upload=upload)))

    async def upload(self, tenant: str, workflow_id: str) -> ProductUploaded | None:
        """The upload of a workflow, if it was kept."""
        data = await self._get_once(subjects.checkpoint_key(tenant, workflow_id, UPLOAD))
        return decode(data, UploadCheckpoint).upload if data else None

    async def put(self, checkpoint: AgentCheckpoint) -> None:
        """Keep an agent's finished work."""
        key = subjects.checkpoint_key(checkpoint.tenant, checkpoint.workflow_id, checkpoint.agent)
        await self._put_once(key, encode(checkpoint))

    async def get(self, tenant: str, workflow_id: str, agent: str) -> AgentCheckpoint | None:
        """An agent's finished work for a workflow, if any."""
        data = await self._get_once(subjects.checkpoint_key(tenant, workflow_id, agent))
        return decode(data, AgentCheckpoint) if data else None

    async def state(self, tenant: str, workflow_id: str) -> WorkflowState | None:
        """The workflow's state as stored now (never cached: a cancellation must show)."""
        data = await self._get(subjects.checkpoint_key(tenant, workflow_id, STATE))
        return decode(data, WorkflowState) if data else None

    async def update_state(
        self,
        tenant: str,
        workflow_id: str,
        change: Callable[[WorkflowState], WorkflowState],
    ) -> tuple[WorkflowState, WorkflowState]:
        """Apply change to the workflow's state by compare-and-set; (before, after).

        Concurrent agent-done events of one workflow each retry until their change lands
        on the latest state, so none is lost and each sees exactly the state it changed.
        """
        key = subjects.checkpoint_key(tenant, workflow_id, STATE)
        while True:
            try:
                entry = await self._kv.get(key)
            except KeyNotFoundError:
                before = WorkflowState(workflow_id=workflow_id, tenant=tenant)
                after = change(before)
                try:
                    await self._kv.create(key, encode(after))
                    return before, after
                except KeyWrongLastSequenceError:
                    continue
            before = decode(entry.value or b"", WorkflowState)
            after = change(before)
            if after == before:
                return before, after
            try:
                await self._kv.update(key, encode(after), last=entry.revision)
                return before, after
            except KeyWrongLastSequenceError:
                continue

    async def finished(
        self, tenant: str, workflow_id: str, agents: Iterable[str] | None = None
    ) -> dict[str, AgentCheckpoint]:
        """The agent checkpoints of a workflow that exist, by agent name.

        Given the agents (the DAG's), they are read by direct gets, all at once; otherwise a
        watch on the workflow's own keys finds them (filtered by the server: nats-py's keys()
        would scan the whole bucket and filter on the client).
        """
        out: dict[str, AgentCheckpoint] = {}
        if agents is not None:
            names = [name for name in agents if name not in RESERVED]
            found = await asyncio.gather(*(self.get(tenant, workflow_id, n) for n in names))
            return {name: c for name, c in zip(names, found, strict=True) if c is not None}
        async for key, value in self._entries(subjects.workflow_checkpoints(tenant, workflow_id)):
            agent = key.rsplit(".", 1)[1]
            if agent not in RESERVED:
                out[agent] = decode(value, AgentCheckpoint)
        return out

    async def put_package(self, tenant: str, workflow_id: str, package: AgentCheckpoint) -> None:
        """Keep a finished workflow's listing package (what seller chat reads)."""
        await self._kv.put(subjects.checkpoint_key(tenant, workflow_id, PACKAGE), encode(package))

    async def packages(self, tenant: str) -> AsyncIterator[AgentCheckpoint]:
        """The listing packages of one tenant's finished workflows, and nobody else's."""
        async for _key, value in self._entries(subjects.tenant_checkpoints(tenant, PACKAGE)):
            yield decode(value, AgentCheckpoint)

    async def tenants_with(self, name: str) -> list[str]:
        """The tenants with at least one checkpoint of this name (e.g. "package": those with
        listings), sorted; read from the keys alone, no value is fetched."""
        keys = self._entries(subjects.checkpoints_named(name), keys_only=True)
        return sorted({key.split(".", 1)[0] async for key, _ in keys})

    async def _entries(
        self, pattern: str, *, keys_only: bool = False
    ) -> AsyncIterator[tuple[str, bytes]]:
        """The current value of every key matching pattern (keys_only: each key, with an
        empty value: the server sends the headers alone).

        A pull consumer, not nats-py's watch: the watch decides it has seen everything from a
        consumer-info count that races with the first deliveries, and under load it ends
        before any value arrived. A pull consumer delivers nothing until asked, so its
        pending count is exact, and each message carries what is still pending after it.
        """
        kv: Any = self._kv  # nats-py keeps the bucket's stream and subject prefix private
        js: JetStreamContext = kv._js
        prefix: str = kv._pre
        sub = await js.pull_subscribe(
            prefix + pattern,
            stream=kv._stream,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                ack_policy=AckPolicy.NONE,
                inactive_threshold=5.0,  # the server drops it this soon after it is left
                headers_only=keys_only or None,
            ),
        )
        try:
            pending = (await sub.consumer_info()).num_pending or 0
            while pending > 0:
                for msg in await sub.fetch(min(pending, FETCH), timeout=5.0):
                    pending = msg.metadata.num_pending
                    live = (msg.headers or {}).get(KV_OPERATION) is None
                    if live and (msg.data or keys_only):
                        yield msg.subject.removeprefix(prefix), msg.data
        finally:
            await sub.unsubscribe()

    async def _put_once(self, key: str, data: bytes) -> None:
        await self._kv.put(key, data)
        self._remember(key, data)

    async def _get_once(self, key: str) -> bytes | None:
        """A write-once value: from memory when this store saw it before."""
        data = self._cache.get(key)
        if data is not None:
            self._cache.move_to_end(key)
            return data
        data = await self._get(key)
        if data:
            self._remember(key, data)
        return data

    def _remember(self, key: str, data: bytes) -> None:
        self._cache[key] = data
        if len(self._cache) > CACHED:
            self._cache.popitem(last=False)

    async def _get(self, key: str) -> bytes | None:
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None
        return entry.value
