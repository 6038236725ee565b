"""Agent outputs per workflow, in the JetStream key-value bucket (survives any process)."""

from __future__ import annotations

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from agents.spec import UPLOAD
from bus import subjects
from bus.codec import decode, encode
from bus.messages import AgentCheckpoint, ProductUploaded, UploadCheckpoint


class CheckpointStore:
    """Reads and writes checkpoints: the upload, and each agent's output, by workflow."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def put_upload(self, upload: ProductUploaded) -> None:
        """Keep the upload a workflow starts from."""
        key = subjects.checkpoint_key(upload.workflow_id, UPLOAD)
        await self._kv.put(key, encode(UploadCheckpoint(upload=upload)))

    async def upload(self, workflow_id: str) -> ProductUploaded | None:
        """The upload of a workflow, if it was kept."""
        data = await self._get(subjects.checkpoint_key(workflow_id, UPLOAD))
        return decode(data, UploadCheckpoint).upload if data else None

    async def put(self, checkpoint: AgentCheckpoint) -> None:
        """Keep an agent's finished work."""
        key = subjects.checkpoint_key(checkpoint.workflow_id, checkpoint.agent)
        await self._kv.put(key, encode(checkpoint))

    async def get(self, workflow_id: str, agent: str) -> AgentCheckpoint | None:
        """An agent's finished work for a workflow, if any."""
        data = await self._get(subjects.checkpoint_key(workflow_id, agent))
        return decode(data, AgentCheckpoint) if data else None

    async def finished(self, workflow_id: str) -> dict[str, AgentCheckpoint]:
        """Every agent checkpoint of a workflow, by agent name.

        A watch on the workflow's own keys is filtered by the server; nats-py's keys()
        would scan the whole bucket and filter on the client.
        """
        watcher = await self._kv.watch(f"{subjects.token(workflow_id)}.*", ignore_deletes=True)
        out: dict[str, AgentCheckpoint] = {}
        try:
            async for entry in watcher:
                if entry is None:  # the end of the values that exist now
                    break
                agent = entry.key.split(".", 1)[1]
                if agent != UPLOAD and entry.value:
                    out[agent] = decode(entry.value, AgentCheckpoint)
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return out

    async def _get(self, key: str) -> bytes | None:
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None
        return entry.value
