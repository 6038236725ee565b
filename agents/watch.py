"""Following uploads from the outside: progress and final events of a tenant's workflows."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from bus import subjects
from bus.codec import decode
from bus.errors import WireError
from bus.messages import WorkflowDone, WorkflowProgress

OnProgress = Callable[[WorkflowProgress], None]


class WorkflowWatcher:
    """Collects WorkflowDone events (and reports progress) for one tenant's workflows."""

    def __init__(self, broker: NatsBroker, tenant: str, on_progress: OnProgress | None = None):
        self._broker = broker
        self._tenant = subjects.token(tenant)
        self._on_progress = on_progress
        self._subs: list[Subscription] = []
        self.done: dict[str, WorkflowDone] = {}
        self._changed = asyncio.Event()

    async def __aenter__(self) -> WorkflowWatcher:
        nc = self._broker.connection
        self._subs = [
            await nc.subscribe(f"workflow.done.{self._tenant}.*", cb=self._on_done),
            await nc.subscribe(f"workflow.progress.{self._tenant}.*", cb=self._progress),
        ]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for sub in self._subs:
            await sub.unsubscribe()

    async def wait(self, workflow_ids: Iterable[str], timeout_s: float) -> dict[str, WorkflowDone]:
        """The final events of workflow_ids; raise TimeoutError if they do not all come."""
        wanted = set(workflow_ids)
        async with asyncio.timeout(timeout_s):
            while not wanted <= self.done.keys():
                self._changed.clear()
                await self._changed.wait()
        return {wf: self.done[wf] for wf in wanted}

    async def _on_done(self, msg: Msg) -> None:
        try:
            done = decode(msg.data, WorkflowDone)
        except WireError:
            return
        self.done[done.workflow_id] = done
        self._changed.set()

    async def _progress(self, msg: Msg) -> None:
        if self._on_progress is None:
            return
        try:
            self._on_progress(decode(msg.data, WorkflowProgress))
        except WireError:
            return
