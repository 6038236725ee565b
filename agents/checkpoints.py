"""Workflow checkpoints in the JetStream key-value bucket (they survive any process).

Keys are ``<tenant>.<workflow>.<name>``: the upload, each agent's output, the workflow's
state (which agents settled) and, once it finished, its listing package. Tenant first, so a
tenant's data is one key prefix, and reading it never touches another tenant's keys.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from agents.spec import PACKAGE, RESERVED, STATE, UPLOAD
from bus import subjects
from bus.codec import decode, encode
from bus.messages import AgentCheckpoint, ProductUploaded, UploadCheckpoint, WorkflowState

CACHED = 8192
"""Uploads and agent checkpoints kept in memory: they are written once and never change,
so a replica that read one can serve it again without asking the server."""


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

    async def _entries(self, pattern: str) -> AsyncIterator[tuple[str, bytes]]:
        # A watch is an ordered consumer; the server drops it this soon after it stops.
        watcher = await self._kv.watch(pattern, ignore_deletes=True, inactive_threshold=5.0)
        try:
            async for entry in watcher:
                if entry is None:  # the end of the values that exist now
                    break
                if entry.value:
                    yield entry.key, entry.value
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]

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
