"""Reading many checkpoints at once (agents.checkpoints): every current value of the pattern,
none of another tenant's or workflow's, none deleted, across more than one fetch."""

from __future__ import annotations

import uuid

from nats.js.api import KeyValueConfig

from agents.checkpoints import FETCH, CheckpointStore
from agents.spec import PACKAGE
from bus import subjects
from bus.broker import make_broker
from bus.embedded import EmbeddedNats
from bus.messages import AgentCheckpoint


def checkpoint(tenant: str, workflow: str, agent: str, note: str) -> AgentCheckpoint:
    """A finished agent's checkpoint whose output says note."""
    return AgentCheckpoint(workflow_id=workflow, tenant=tenant, agent=agent, ok=True,
                           output={"note": note})  # fmt: skip


async def test_every_value_of_a_pattern_and_nothing_else(nats_server: EmbeddedNats) -> None:
    broker = make_broker(nats_server.url)
    await broker.connect()
    js = broker.connection.jetstream()
    bucket = f"cp{uuid.uuid4().hex[:8]}"
    kv = await js.create_key_value(KeyValueConfig(bucket=bucket, history=1))
    store = CheckpointStore(kv)
    try:
        agents = [f"a{i:03d}" for i in range(FETCH + 44)]  # two fetches
        for name in agents:
            await store.put(checkpoint("t1", "wf1", name, "old"))
        await store.put(checkpoint("t1", "wf1", "a000", "new"))  # the latest value counts
        await kv.delete(subjects.checkpoint_key("t1", "wf1", "a001"))  # gone: not listed
        await store.put(checkpoint("t1", "wf2", "a000", "other workflow"))
        await store.put(checkpoint("t2", "wf1", "a000", "other tenant"))
        for wf, note in (("wf1", "p1"), ("wf3", "p3")):
            await store.put_package("t1", wf, checkpoint("t1", wf, PACKAGE, note))
        await store.put_package("t2", "wf9", checkpoint("t2", "wf9", PACKAGE, "theirs"))

        found = await store.finished("t1", "wf1")
        assert sorted(found) == [name for name in agents if name != "a001"]
        assert found["a000"].output == {"note": "new"}
        assert found["a002"].output == {"note": "old"}
        packages = [p.output async for p in store.packages("t1")]
        assert sorted(str(p) for p in packages) == ["{'note': 'p1'}", "{'note': 'p3'}"]
        assert [p async for p in store.packages("t3")] == []
        assert await store.tenants_with(PACKAGE) == ["t1", "t2"]  # from the keys alone
        await kv.delete(subjects.checkpoint_key("t2", "wf9", PACKAGE))  # gone: not listed
        assert await store.tenants_with(PACKAGE) == ["t1"]
    finally:
        await js.delete_key_value(bucket)
        await broker.stop()
