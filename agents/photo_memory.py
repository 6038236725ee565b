"""Photo memory: per tenant, which photos were seen before and what each agent found in them.

Two kinds of keys share the photo_analyses bucket (JetStream KV, so replicas and restarts
share it):

- ``<tenant>.<agent>.<photo hash>``: one agent's analysis of one photo. Created first as a
  claim (pending) by the workflow that analyses it, so concurrent workflows wait for that one
  answer instead of paying for their own; a claim older than ``claim_s`` is taken over.
- ``<tenant>._index.<part>``: the near-duplicate index, the hashes of the tenant's photos
  whose pHash has that part. An upload reads the four keys of a photo's parts (direct gets,
  no consumer) and, when an earlier photo is the same picture, takes that photo's hash as
  its own, so every agent then hits the exact key.

Nothing crosses tenants: every key starts with the tenant, and lookups filter on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Collection
from dataclasses import dataclass

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from agents.photos import hash_chunks, same_picture
from bus import subjects
from bus.codec import decode, encode
from bus.errors import WireError
from bus.messages import PhotoAnalysis, now_ms

Entry = KeyValue.Entry
INDEX = "_index"
POLL_S = 0.05


class ClaimState(enum.StrEnum):
    """What a claim on one photo's analysis came to."""

    MINE = "mine"  # analyse it, then put() or release()
    DONE = "done"  # an analysis exists: reuse it
    BUSY = "busy"  # another workflow is analysing it: wait()


@dataclass(frozen=True, kw_only=True)
class Claim:
    """The outcome of claiming one photo for one agent."""

    state: ClaimState
    analysis: PhotoAnalysis | None = None


class PhotoMemory:
    """Reads and writes the photo_analyses bucket for the agents of every tenant."""

    def __init__(self, kv: KeyValue, *, claim_s: float = 60.0) -> None:
        self._kv = kv
        self._claim_ms = int(claim_s * 1000)

    async def canonical(self, tenant: str, photo_hash: str) -> str:
        """The hash of this tenant's earlier photo of the same picture, else photo_hash
        itself, which is then indexed for later uploads."""
        keys = [f"{subjects.token(tenant)}.{INDEX}.{part}" for part in hash_chunks(photo_hash)]
        entries = await asyncio.gather(*(self._entry(key) for key in keys))
        candidates = {h for entry in entries if entry for h in _hashes(entry.value)}
        if photo_hash in candidates:
            return photo_hash
        near = sorted(c for c in candidates if same_picture(photo_hash, c))
        if near:
            return near[0]
        for key, entry in zip(keys, entries, strict=True):
            await self._append(key, photo_hash, entry)
        return photo_hash

    async def _append(self, key: str, photo_hash: str, entry: Entry | None) -> None:
        """Add photo_hash to an index key's list, by compare-and-set."""
        while True:
            if entry is not None and photo_hash in _hashes(entry.value):
                return
            value = "\n".join([*(_hashes(entry.value) if entry else []), photo_hash]).encode()
            try:
                if entry is None:
                    await self._kv.create(key, value)
                else:
                    await self._kv.update(key, value, last=entry.revision)
                return
            except KeyWrongLastSequenceError:
                entry = await self._entry(key)

    async def _entry(self, key: str) -> Entry | None:
        try:
            return await self._kv.get(key)
        except KeyNotFoundError:
            return None

    async def claim(self, tenant: str, agent: str, photo_hash: str, workflow_id: str) -> Claim:
        """Claim the analysis of a photo for this workflow, unless it exists or is claimed."""
        key = subjects.photo_analysis_key(tenant, agent, photo_hash)
        mine = encode(PhotoAnalysis(pending=True, claimed_ms=now_ms(), workflow_id=workflow_id))
        while True:
            try:
                await self._kv.create(key, mine)
                return Claim(state=ClaimState.MINE)
            except KeyWrongLastSequenceError:
                pass
            try:
                entry = await self._kv.get(key)
            except KeyNotFoundError:
                continue  # released in between: try again
            current = _read(entry.value)
            if current is not None and not current.pending:
                return Claim(state=ClaimState.DONE, analysis=current)
            stale = current is None or now_ms() - current.claimed_ms > self._claim_ms
            if stale or (current is not None and current.workflow_id == workflow_id):
                try:  # our own claim from before a restart, or an abandoned one
                    await self._kv.update(key, mine, last=entry.revision)
                    return Claim(state=ClaimState.MINE)
                except KeyWrongLastSequenceError:
                    continue
            return Claim(state=ClaimState.BUSY)

    async def wait(self, tenant: str, agent: str, photo_hash: str, workflow_id: str) -> Claim:
        """Wait until another workflow's analysis lands (DONE) or its claim lapses (MINE)."""
        while True:
            claim = await self.claim(tenant, agent, photo_hash, workflow_id)
            if claim.state is not ClaimState.BUSY:
                return claim
            await asyncio.sleep(POLL_S)

    async def put(self, tenant: str, agent: str, photo_hash: str, analysis: PhotoAnalysis) -> None:
        """Keep a finished analysis for reuse."""
        await self._kv.put(subjects.photo_analysis_key(tenant, agent, photo_hash), encode(analysis))

    async def release_claims(self, tenant: str, workflow_ids: Collection[str]) -> int:
        """Give up the claims these workflows still hold (they were cancelled): a workflow
        waiting on one takes over at once, not after claim_s (a demo run after a Ctrl-C
        waited 60 s on the analyses its interrupted run had claimed). How many were given up."""
        mine = set(workflow_ids)
        released = 0
        watcher = await self._kv.watch(f"{subjects.token(tenant)}.>", ignore_deletes=True)
        try:
            async for entry in watcher:
                if entry is None:  # the end of what is stored now
                    break
                if f".{INDEX}." in entry.key:
                    continue
                current = _read(entry.value)
                if current is None or not current.pending or current.workflow_id not in mine:
                    continue
                with contextlib.suppress(KeyWrongLastSequenceError, KeyNotFoundError):
                    await self._kv.delete(entry.key, last=entry.revision)  # still that claim
                    released += 1
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return released

    async def release(self, tenant: str, agent: str, photo_hash: str) -> None:
        """Give up a claim (the analysis failed), so that a waiting workflow takes over."""
        with contextlib.suppress(KeyNotFoundError):
            await self._kv.delete(subjects.photo_analysis_key(tenant, agent, photo_hash))


def _hashes(value: bytes | None) -> list[str]:
    return [h for h in (value or b"").decode().split("\n") if h]


def _read(value: bytes | None) -> PhotoAnalysis | None:
    if not value:
        return None
    try:
        return decode(value, PhotoAnalysis)
    except WireError:
        return None
